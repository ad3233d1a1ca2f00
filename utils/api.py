"""Fit one's own function, or solve one's own Poisson problem, with any family: the pipeline as a library.

    from utils.api import fit_function, solve_poisson
    df, model = fit_function(lambda x: torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2),
                             [(-1, 1), (-1, 1)], "kan", epochs=1000, width=[2, 1, 1], grids=(3, 5, 10, 20, 50))

Both train exactly as a section run trains that family (same optimizer, data sizes, grid schedule,
metrics) and return the same per-epoch rows (with ``grid_size`` for KANs) and the trained model: a
torch module for MLP and SIREN, a pykan ``KAN`` (the last grid stage's) for KANs.
"""
from __future__ import annotations

import pandas as pd

from utils.config import DEFAULT_DTYPE, KAN_GRIDS
from utils.families import FAMILIES
from utils.models import build_model
from utils.sweep import SETTINGS, Ensemble, Task

CONFIG = {"mlp": {"width": SETTINGS["width"], "depth": 3, "activation": "tanh"},
          "siren": {"width": SETTINGS["width"], "depth": 3},
          "kan": {"width": SETTINGS["kan_width"]},
          "kan_pruning": {"width": SETTINGS["kan_width"], "prune_lamb": SETTINGS["prune_lamb"],
                          "prune_node_th": SETTINGS["prune_node_th"], "prune_edge_th": SETTINGS["prune_edge_th"]}}


def _train(problem, family, epochs, seed, device, dtype, config):
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (one of {', '.join(FAMILIES)})")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
    grids = tuple(config.pop("grids", KAN_GRIDS)) if family.startswith("kan") else ()
    unknown = set(config) - set(CONFIG[family])
    if unknown:
        raise ValueError(f"{family}: unknown settings {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(CONFIG[family])}{', grids' if grids else ''})")
    config = {**CONFIG[family], **config}
    columns = {k: (str(v) if isinstance(v, (list, tuple)) else v) for k, v in config.items()}
    task = Task("api", family, 0, problem.name, seed, epochs, device, tuple(columns.items()), grids, (), dtype)
    rows, snapshots = FAMILIES[family].train(Ensemble((task,)), [problem],
                                             [{"dataset_idx": 0, "dataset_name": problem.name, "seed": seed, **columns}],
                                             config)
    return pd.DataFrame(rows[0]), build_model(snapshots[0][-1][1])


def fit_function(target, domain, family, *, epochs, seed=0, device="cpu", dtype=DEFAULT_DTYPE, **config):
    """Fit ``target`` ((N, d) tensor -> (N, 1)) on the box ``domain`` [(lo, hi), ...] with one family.

    1000 training, 1000 validation and 1000 test points, uniform and seeded; dense errors on a
    10,000-point grid (100 x 100 in 2D). ``config``: ``width``, ``depth``, ``activation`` for MLP
    (tanh / relu / silu) and SIREN; for KANs ``width`` (the hidden width, or a whole width list such
    as [2, 1, 1]) and ``grids`` (the grid schedule); for the pruned KAN also ``prune_lamb``,
    ``prune_node_th``, ``prune_edge_th``. ``target`` is evaluated at float64 points; ``dtype`` is the
    training precision. Returns (rows, trained model).
    """
    from utils.datasets import RegressionProblem
    problem = RegressionProblem("target", target, seed, 0, device, domain=tuple(tuple(map(float, d)) for d in domain))
    return _train(problem, family, epochs, seed, device, dtype, dict(config))


def solve_poisson(u, f, domain, family, *, epochs, sign=-1, mode="pinn", alpha=None, n_interior=None,
                  n_boundary=None, seed=0, device="cpu", dtype=DEFAULT_DTYPE, **config):
    """Solve ``sign * Lap u = f`` on the box ``domain`` with u = 0 on its boundary, from the equation.

    ``u`` (the exact solution, which must vanish on the boundary) only measures the errors; ``f``
    is the forcing; both map (N, d) tensors to (N, 1). Defaults as in the sections: alpha = 0.01,
    10,000 interior and 800 boundary points in 2D, 1000 and the two end points in 1D.
    ``mode="supervised"`` fits u from samples instead; ``dtype`` is the training precision (u and f
    are evaluated at float64 points). Returns (rows, trained model).
    """
    from utils.pde import PoissonPDE, PoissonProblem
    pde = PoissonPDE(tuple(tuple(map(float, d)) for d in domain), u, f, sign)
    problem = PoissonProblem("poisson", seed, 0, device, mode, alpha, n_interior, n_boundary, pde=pde)
    return _train(problem, family, epochs, seed, device, dtype, dict(config))
