"""Section 1.3: 2D Poisson equations with u = 0 on the boundary, including the KAN paper's problem on
[-1, 1]^2, solved by MLPs, SIRENs, KANs and pruned KANs trained from the equation (physics-informed).
"""
import signal

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C before main() handles it ends the script quietly
    from utils.pipeline.cli import main
    main("section1_3")
