"""Section 1.2: the 1D Poisson equation -u'' = f on (0, 1), u(0) = u(1) = 0, solved by MLPs, SIRENs,
KANs and pruned KANs trained from the equation (physics-informed), errors measured against the exact u.
"""
from utils.pipeline.cli import main

if __name__ == "__main__":
    main("section1_2")
