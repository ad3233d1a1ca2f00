"""Section 1.1: 1D function approximation with MLPs, SIRENs, KANs and pruned KANs.

Nine target functions on [0, 1] (five sinusoids, a piecewise constant, a sawtooth, a polynomial and
a high-frequency sine), 1000 random training and 1000 test points each; every family is trained
with the same number of LBFGS steps and measured on a dense 10,000-point grid of [0, 1].
"""
import signal

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C before main() handles it ends the script quietly
    from utils.pipeline.cli import main
    main("section1_1")
