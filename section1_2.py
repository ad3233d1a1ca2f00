"""Section 1.2: the 1D Poisson equation -u'' = f on (0, 1), u(0) = u(1) = 0, solved by MLPs, SIRENs,
KANs and pruned KANs trained from the equation (physics-informed), errors measured against the exact u.
"""
import signal

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C before main() handles it ends the script quietly
    from utils.pipeline.cli import main
    main("section1_2")
