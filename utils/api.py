"""Fit one's own function, or solve one's own Poisson problem, with any family: the pipeline as a library.

    from utils.api import fit_function, solve_poisson
    df, model = fit_function(lambda x: torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2),
                             [(-1, 1), (-1, 1)], "kan", epochs=1000, width=[2, 1, 1], grids=(3, 5, 10, 20, 50))

Both train exactly as a section run trains that family (same optimizer, data sizes, grid schedule,
metrics, precision, device decision: they are a one-problem section run through ``pipeline.run``)
and return the same per-epoch rows (with ``grid_size`` for KANs) and the trained model: a torch
module for MLP and SIREN, a pykan ``KAN`` (the last grid stage's) for KANs.
"""
from __future__ import annotations

from utils.config import DEFAULT_DTYPE, KAN_GRIDS
from utils.families import FAMILIES, SETTINGS


def _config(family: str, config: dict) -> dict:
    """The family's configuration of one model: the settings' defaults, overridden by ``config``."""
    f = FAMILIES[family]
    defaults = {**{column: SETTINGS[key] for column, key in f.settings}, **f.api_defaults}
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(f"{family}: unknown settings {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(defaults)}{', grids' if f.grid_schedule else ''})")
    return {**defaults, **config}


def _train(section, family, epochs, seed, device, dtype, config, problem_options=()):
    """One model of ``family`` on the section's one problem, as a section run trains it: (rows, model)."""
    import torch

    from utils.device import resolve
    from utils.models.saving import from_spec
    from utils.pipeline.run import placement, train
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (one of {', '.join(FAMILIES)})")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
    grids = tuple(config.pop("grids", KAN_GRIDS)) if FAMILIES[family].grid_schedule else None
    config = _config(family, config)
    name = next(iter(section.problems))
    resolve(device)  # refuses a device this machine does not have
    options = {"section": section.name, "datasets": [(0, name)], "families": [family], "seeds": [seed],
               "epochs": epochs, "device": device, "dtype": dtype, "problem_options": problem_options,
               "configs": {family: [tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items())]},
               "grids": grids}
    options["devices"] = placement(options, workers=1).devices   # the command line's decision, one family
    threads = torch.get_num_threads()  # a section's sweep trains on one thread; the caller's setting comes back
    try:
        frames, models = train(options, section=section)
    finally:
        torch.set_num_threads(threads)
    return frames[family], from_spec(list(models[family][name].values())[-1])


def fit_function(target, domain, family, *, epochs, seed=0, device="auto", dtype=DEFAULT_DTYPE, **config):
    """Fit ``target`` ((N, d) tensor -> (N, 1)) on the box ``domain`` [(lo, hi), ...] with one family.

    1000 training, 1000 validation and 1000 test points, uniform and seeded; dense errors on a
    10,000-point grid (100 x 100 in 2D). ``config``: ``width``, ``depth``, ``activation`` for MLP
    (tanh / relu / silu) and SIREN; for KANs ``width`` (the hidden width, or a whole width list such
    as [2, 1, 1]) and ``grids`` (the grid schedule); for the pruned KAN also ``prune_lamb``,
    ``prune_node_th``, ``prune_edge_th``. ``target`` is evaluated at float64 points; ``dtype`` is the
    training precision; ``device`` auto, cpu or cuda, decided as the command line decides it.
    Returns (rows, trained model).
    """
    from utils.sections import Section
    domain = tuple(tuple(map(float, d)) for d in domain)
    section = Section("api", "your function", {"target": target}, (), dim=len(domain), domain=domain)
    return _train(section, family, epochs, seed, device, dtype, dict(config))


def solve_poisson(u, f, domain, family, *, epochs, sign=-1, mode="pinn", alpha=None, n_interior=None,
                  n_boundary=None, seed=0, device="auto", dtype=DEFAULT_DTYPE, **config):
    """Solve ``sign * Lap u = f`` on the box ``domain`` with u = 0 on its boundary, from the equation.

    ``u`` (the exact solution, which must vanish on the boundary) only measures the errors; ``f``
    is the forcing; both map (N, d) tensors to (N, 1). Defaults as in the sections: alpha = 0.01,
    10,000 interior and 800 boundary points in 2D, 1000 and the two end points in 1D.
    ``mode="supervised"`` fits u from samples instead; ``dtype`` is the training precision (u and f
    are evaluated at float64 points). Returns (rows, trained model).
    """
    from utils.problems.poisson import PoissonPDE
    from utils.sections import Section
    pde = PoissonPDE(tuple(tuple(map(float, d)) for d in domain), u, f, sign)
    section = Section("api", "your Poisson problem", {"poisson": pde}, (), kind="poisson", dim=pde.dim)
    options = (("mode", mode), ("alpha", alpha), ("n_interior", n_interior), ("n_boundary", n_boundary))
    return _train(section, family, epochs, seed, device, dtype, dict(config), options)
