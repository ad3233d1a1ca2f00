"""Section 1.3: 2D Poisson equations with u = 0 on the boundary, including the KAN paper's problem on
[-1, 1]^2, solved by MLPs, SIRENs, KANs and pruned KANs trained from the equation (physics-informed).
"""
from utils.cli import add_pde_arguments, pde_options, run_section
from utils.pde import SECTION1_3

QUICK_DATASETS = ("poisson_2d_sin", "poisson_2d_spec")

if __name__ == "__main__":
    run_section("section1_3", list(enumerate(SECTION1_3)), QUICK_DATASETS, __doc__.split("\n\n")[0],
                add_arguments=lambda p: add_pde_arguments(p, 2), problem_options=pde_options)
