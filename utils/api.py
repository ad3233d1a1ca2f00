"""Fit one's own function, or solve one's own Poisson problem, with any family: the pipeline as a library.

    from utils.api import fit_function, solve_poisson
    df, model = fit_function(lambda x: torch.exp(torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2),
                             [(-1, 1), (-1, 1)], "kan", epochs=1000, width=[2, 1, 1], grids=(3, 5, 10, 20, 50))

Both train exactly as a section run trains that family (same optimizer, data sizes, grid schedule,
metrics, precision, device decision: they are a one-problem section run through ``pipeline.run``)
and return the same per-epoch rows (with ``grid_size`` for KANs) and the trained model: a torch
module for MLP and SIREN, a pykan ``KAN`` (the last grid stage's) for KANs.

Both check the problem before training and refuse a bad one with a one-line ValueError naming the
argument and what was expected, as the command line does: a target of shape (N,) would otherwise be
broadcast to N x N, a NaN forcing would give NaN rows, a u that is not zero on the boundary would
solve another problem than the one measured.
"""
from __future__ import annotations

import math
import numbers

from utils.config import DEFAULT_DTYPE, KAN_GRIDS, MAX_SEED, MLP_ACTIVATIONS, PDE_DEFAULTS
from utils.families import FAMILIES, SETTINGS

# u must vanish on the boundary up to this, relative to its largest value on the dense grid (sin(pi)
# in float64 is 1.2e-16)
BOUNDARY_TOLERANCE = 1e-6


def _is_whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(name: str, value, least: int = 1):
    if not _is_whole(value) or value < least:
        raise ValueError(f"{name} must be a whole number of at least {least}, got {value!r}")
    return int(value)


def _positive(name: str, value):
    if not _is_real(value) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _domain(domain) -> tuple:
    """((lo, hi), ...) as floats: 1 or 2 dimensions, the ones the dense grids and the PDE defaults exist for."""
    example = "such as [(0, 1)] or [(-1, 1), (-1, 1)]"
    if isinstance(domain, (str, bytes)) or not isinstance(domain, (list, tuple)) or not domain:
        raise ValueError(f"domain must be a non-empty list of (lo, hi) pairs, {example}; got {domain!r}")
    if all(_is_real(d) for d in domain):
        raise ValueError(f"domain must be a list of (lo, hi) pairs, {example}; got {domain!r} "
                         f"(one pair: [{domain!r}]?)")
    pairs = []
    for i, d in enumerate(domain):
        if isinstance(d, (str, bytes)) or not isinstance(d, (list, tuple)) or len(d) != 2 or not all(map(_is_real, d)):
            raise ValueError(f"domain[{i}] must be a (lo, hi) pair of numbers, got {d!r}")
        lo, hi = float(d[0]), float(d[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"domain[{i}] must hold finite numbers, got {d!r}")
        if not lo < hi:
            raise ValueError(f"domain[{i}] must have lo < hi, got {d!r}")
        pairs.append((lo, hi))
    if len(pairs) > 2:
        raise ValueError(f"domain has {len(pairs)} dimensions; 1 or 2 are supported (the dense error grids and the "
                         f"PDE defaults exist for those)")
    return tuple(pairs)


def _check_config(family: str, config: dict, dim: int) -> None:
    """The family's settings of one model, as the command line would accept them."""
    for key in ("prune_lamb", "prune_node_th", "prune_edge_th"):
        if key in config:
            _positive(key, config[key])
    if "depth" in config:
        _whole("depth", config["depth"], 2)
    if "activation" in config and config["activation"] not in MLP_ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(MLP_ACTIVATIONS)}, got {config['activation']!r}")
    width = config["width"]
    if not FAMILIES[family].grid_schedule or not isinstance(width, (list, tuple)):
        _whole("width", width)
        return
    if len(width) < 2 or not all(_is_whole(w) and w >= 1 for w in width) or width[0] != dim or width[-1] != 1:
        raise ValueError(f"width must be the KAN's hidden width or a width list [{dim}, ..., 1] of positive whole "
                         f"numbers (the domain has {dim} dimension{'s' if dim != 1 else ''}, the output 1), "
                         f"got {width!r}")


def _check_grids(grids) -> tuple:
    if (isinstance(grids, (str, bytes)) or not isinstance(grids, (list, tuple)) or not grids
            or not all(_is_whole(g) and g >= 1 for g in grids) or any(a >= b for a, b in zip(grids, grids[1:]))):
        raise ValueError(f"grids must be a non-empty, increasing sequence of positive whole numbers such as "
                         f"(3, 5, 10), got {grids!r}")
    return tuple(int(g) for g in grids)


def _values(name: str, what: str, x, y) -> None:
    """``y`` is what ``name`` returned at the points ``x``: an (N, 1) tensor of finite numbers."""
    import torch
    shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
    if not torch.is_tensor(y) or not y.is_floating_point() or tuple(y.shape) != (len(x), 1):
        raise ValueError(f"{name} must return an (N, 1) float tensor for an (N, {x.shape[1]}) float64 tensor of "
                         f"points, got {shape} for N = {len(x)}")
    bad = ~torch.isfinite(y[:, 0])
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{name} is not finite at {int(bad.sum())} of the {len(x)} {what} (e.g. "
                         f"{name}({x[i].tolist()}) = {y[i, 0].item()})")


def _config(family: str, config: dict) -> dict:
    """The family's configuration of one model: the settings' defaults, overridden by ``config``."""
    f = FAMILIES[family]
    defaults = {**{column: SETTINGS[key] for column, key in f.settings}, **f.api_defaults}
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(f"{family}: unknown settings {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(defaults)}{', grids' if f.grid_schedule else ''})")
    return {**defaults, **config}


def _check_run(family, epochs, seed, device, dtype) -> str:
    """What every model needs, checked as the command line checks it (the device too)."""
    from utils.device import resolve
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (one of {', '.join(FAMILIES)})")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if not _is_whole(epochs) or epochs < 1:
        raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
    if not _is_whole(seed) or not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be a whole number in [0, 2**32), got {seed!r}")
    return resolve(device)  # where the problem is checked; a run's auto is decided per family in _train


def _model(family, config: dict, dim: int) -> tuple:
    """(grid schedule or None, the whole configuration) of one model of ``family``, checked."""
    grids = _check_grids(config.pop("grids", KAN_GRIDS)) if FAMILIES[family].grid_schedule else None
    config = _config(family, config)
    _check_config(family, config, dim)
    return grids, config


def _train(section, family, epochs, seed, device, dtype, model, problem_options=()):
    """One model of ``family`` on the section's one problem, as a section run trains it: (rows, model).
    Everything is checked (``_check_run``, ``_model``) and the device decided."""
    import torch

    from utils.models.saving import from_spec
    from utils.pipeline.run import placement, train
    grids, config = model
    name = next(iter(section.problems))
    options = {"section": section.name, "datasets": [(0, name)], "families": [family], "seeds": [seed],
               "epochs": int(epochs), "device": device, "dtype": dtype, "problem_options": problem_options,
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
    from utils.problems.data import RegressionProblem
    from utils.sections import Section
    here, seed = _check_run(family, epochs, seed, device, dtype), int(seed)
    domain = _domain(domain)
    model = _model(family, dict(config), len(domain))
    if not callable(target):
        raise ValueError(f"target must be a function of an (N, d) tensor, got {type(target).__name__}")
    data = RegressionProblem("target", target, seed, 0, here, domain=domain)  # the points the run samples
    for what, x, y in (("training points", data.train_x, data.train_y), ("validation points", data.val_x, data.val_y),
                       ("test points", data.test_x, data.test_y), ("dense grid points", data.dense_x, data.dense_y)):
        _values("target", what, x, y)
    section = Section("api", "your function", {"target": target}, (), dim=len(domain), domain=domain)
    return _train(section, family, epochs, seed, device, dtype, model)


def solve_poisson(u, f, domain, family, *, epochs, sign=-1, mode="pinn", alpha=None, n_interior=None,
                  n_boundary=None, seed=0, device="auto", dtype=DEFAULT_DTYPE, **config):
    """Solve ``sign * Lap u = f`` on the box ``domain`` with u = 0 on its boundary, from the equation.

    ``u`` (the exact solution, which must vanish on the boundary) only measures the errors; ``f``
    is the forcing; both map (N, d) tensors to (N, 1). Defaults as in the sections: alpha = 0.01,
    10,000 interior and 800 boundary points in 2D, 1000 and the two end points in 1D.
    ``mode="supervised"`` fits u from samples instead; ``dtype`` is the training precision (u and f
    are evaluated at float64 points). u must vanish on the boundary to within ``BOUNDARY_TOLERANCE``
    times its largest value on the dense grid. Returns (rows, trained model).
    """
    import torch

    from utils.problems.data import PoissonProblem, boundary_points
    from utils.problems.poisson import PoissonPDE
    from utils.sections import Section
    here, seed = _check_run(family, epochs, seed, device, dtype), int(seed)
    domain = _domain(domain)
    model = _model(family, dict(config), len(domain))
    for name, fn in (("u", u), ("f", f)):
        if not callable(fn):
            raise ValueError(f"{name} must be a function of an (N, d) tensor, got {type(fn).__name__}")
    if isinstance(sign, bool) or sign not in (-1, 1):
        raise ValueError(f"sign must be -1 (-Lap u = f) or +1 (Lap u = f), got {sign!r}")
    if mode not in ("pinn", "supervised"):
        raise ValueError(f"mode must be 'pinn' or 'supervised', got {mode!r}")
    alpha = None if alpha is None else _positive("alpha", alpha)
    n_interior = None if n_interior is None else _whole("n_interior", n_interior)
    n_boundary = None if n_boundary is None else _whole("n_boundary", n_boundary, 2 * len(domain))
    pde = PoissonPDE(domain, u, f, int(sign))
    data = PoissonProblem("poisson", seed, 0, here, mode, alpha, n_interior, n_boundary, pde=pde)
    checks = [("u", "dense grid points", data.dense_x, data.dense_u),
              ("f", "dense grid points", data.dense_x, data.dense_f)]
    if mode == "pinn":
        checks += [("f", "interior points", x, y) for x, y in ((data.train_x, data.f_train), (data.val_x, data.f_val),
                                                               (data.test_x, data.f_test))]
    else:
        checks += [("u", "sample points", x, y) for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y),
                                                             (data.test_x, data.test_y))]
    for name, what, x, y in checks:
        _values(name, what, x, y)
    edge = boundary_points(domain, PDE_DEFAULTS[len(domain)]["n_boundary"], torch.Generator().manual_seed(seed), here)
    on_edge = u(edge)
    _values("u", "boundary points", edge, on_edge)
    i = int(on_edge.abs().argmax())
    if on_edge[i].abs() > BOUNDARY_TOLERANCE * data.dense_u.abs().max():
        raise ValueError(f"u must vanish on the boundary (to {BOUNDARY_TOLERANCE:g} of its largest value), but "
                         f"u({edge[i].tolist()}) = {on_edge[i].item():.3g}")
    section = Section("api", "your Poisson problem", {"poisson": pde}, (), kind="poisson", dim=pde.dim)
    options = (("mode", mode), ("alpha", alpha), ("n_interior", n_interior), ("n_boundary", n_boundary))
    return _train(section, family, epochs, seed, device, dtype, model, options)
