"""Section 1.2: the 1D Poisson equation -u'' = f on (0, 1), u(0) = u(1) = 0, solved by MLPs, SIRENs,
KANs and pruned KANs trained from the equation (physics-informed), errors measured against the exact u.
"""
from utils.cli import add_pde_arguments, pde_options, run_section
from utils.pde import SECTION1_2

QUICK_DATASETS = ("poisson_1d_sin", "poisson_1d_poly")

if __name__ == "__main__":
    run_section("section1_2", list(enumerate(SECTION1_2)), QUICK_DATASETS, __doc__.split("\n\n")[0],
                add_arguments=lambda p: add_pde_arguments(p, 1), problem_options=pde_options)
