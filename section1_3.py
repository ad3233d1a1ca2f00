"""Section 1.3: 2D Poisson equations with u = 0 on the boundary, including the KAN paper's problem on
[-1, 1]^2, solved by MLPs, SIRENs, KANs and pruned KANs trained from the equation (physics-informed).
"""
from utils.pipeline.cli import main

if __name__ == "__main__":
    main("section1_3")
