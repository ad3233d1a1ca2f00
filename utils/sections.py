"""The sections as data: one entry says everything about a section, and nothing else names one.

A section is a set of named problems (regression targets, or Poisson equations defined by their
exact solution), the ones ``--quick`` keeps, and its kind and dimension. The section scripts, the
sweep, the command line, the figures and the benches read this registry: a new section, or a new
problem in one, is an entry here (plus its maths in ``utils/problems``), and a figure declares what
it needs (``APPLIES_TO = {"dim": 2}``) instead of testing section names. Dataset names are scoped
by their section: ``poisson_1d_highfreq`` is a regression target in section 1.1 and an equation in
section 1.2.

Loads without torch (the problem definitions use tensor methods only), so the command line parses
and answers ``--help`` before torch is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

from utils import config
from utils.problems.functions import DOMAIN_1D, FUNCTIONS_1D
from utils.problems.poisson import PROBLEMS


@dataclass(frozen=True)
class Section:
    name: str
    title: str               # what the section answers, one line (its script's --help)
    problems: dict           # dataset name -> a target function, or a PoissonPDE; dataset_idx is the order
    quick: tuple             # the datasets --quick trains
    kind: str = "regression"  # or "poisson": trained from the equation, errors against the exact u
    dim: int = 1
    domain: tuple = DOMAIN_1D  # a regression section's domain (a Poisson problem carries its own)

    @property
    def is_pde(self) -> bool:
        return self.kind == "poisson"

    @property
    def datasets(self) -> list[tuple[int, str]]:
        """(dataset_idx, name) of every problem, in order."""
        return list(enumerate(self.problems))

    def truth(self, name):
        """(exact function, domain) of a dataset: the target, or the exact solution u."""
        p = self.problems[name]
        return (p.u, p.domain) if self.is_pde else (p, self.domain)

    def make_problem(self, task):
        """The data of one task (its dataset, seed, device and problem options)."""
        from utils.problems.data import PoissonProblem, RegressionProblem
        if self.is_pde:
            return PoissonProblem(task.dataset_name, task.seed, task.dataset_idx, task.device,
                                  pde=self.problems[task.dataset_name], **dict(task.options))
        return RegressionProblem(task.dataset_name, self.problems[task.dataset_name], task.seed, task.dataset_idx,
                                 task.device, domain=self.domain)

    def add_arguments(self, parser, positive_float, point_count):
        """The options this section adds to the command line (the PDE's, defaults as in the KAN paper);
        ``positive_float`` and ``point_count`` are the command line's checks of such values."""
        if not self.is_pde:
            return
        d, quick = config.PDE_DEFAULTS[self.dim], config.QUICK_PDE_POINTS[self.dim]
        parser.add_argument("--mode", choices=["pinn", "supervised"], default="pinn",
                            help="pinn: train from the equation (interior residual + boundary loss); "
                                 "supervised: fit u from 1000 samples, for comparison")
        parser.add_argument("--alpha", type=positive_float, default=d["alpha"], help="weight of the residual term")
        parser.add_argument("--n-interior", type=point_count, default=None,
                            help=f"interior collocation points (default {d['n_interior']}; {quick[0]} with --quick)")
        if self.dim > 1:
            parser.add_argument("--n-boundary", type=point_count, default=None,
                                help=f"boundary points (default {d['n_boundary']}; {quick[1]} with --quick)")

    def problem_options(self, args) -> tuple:
        """What the section's options decide about its problems, as (name, value) pairs stored with the run."""
        if not self.is_pde:
            return ()
        d = config.PDE_DEFAULTS[self.dim]
        quick = config.QUICK_PDE_POINTS[self.dim] if args.quick else (d["n_interior"], d["n_boundary"])
        n_int = args.n_interior or quick[0]
        n_bnd = getattr(args, "n_boundary", None) or quick[1]
        return (("mode", args.mode), ("alpha", args.alpha), ("n_interior", n_int), ("n_boundary", n_bnd))


def _pdes(*names):
    return {name: PROBLEMS[name] for name in names}


SECTIONS = {
    "section1_1": Section("section1_1", "Section 1.1: 1D function approximation with MLPs, SIRENs, KANs and pruned KANs.",
                          FUNCTIONS_1D, ("sin_freq1", "sin_freq2", "piecewise")),
    "section1_2": Section("section1_2", "Section 1.2: the 1D Poisson equation -u'' = f on (0, 1), u(0) = u(1) = 0, "
                                        "solved by MLPs, SIRENs, KANs and pruned KANs trained from the equation "
                                        "(physics-informed), errors measured against the exact u.",
                          _pdes("poisson_1d_sin", "poisson_1d_poly", "poisson_1d_highfreq"),
                          ("poisson_1d_sin", "poisson_1d_poly"), kind="poisson", dim=1),
    "section1_3": Section("section1_3", "Section 1.3: 2D Poisson equations with u = 0 on the boundary, including the "
                                        "KAN paper's problem on [-1, 1]^2, solved by MLPs, SIRENs, KANs and pruned "
                                        "KANs trained from the equation (physics-informed).",
                          _pdes("poisson_2d_sin", "poisson_2d_poly", "poisson_2d_highfreq", "poisson_2d_spec"),
                          ("poisson_2d_sin", "poisson_2d_spec"), kind="poisson", dim=2),
}
