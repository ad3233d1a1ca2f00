"""utils.api checks a problem before training: one ValueError, one line, naming the argument (issue 22).

Every refusal here comes before any training, so each case takes milliseconds; one small fit shows
that a good problem still trains.
"""
import math

import pytest
import torch

from utils.api import fit_function, solve_poisson

PI = math.pi


def sine(x):
    return torch.sin(PI * x[:, :1])


def forcing(x):
    return PI ** 2 * torch.sin(PI * x[:, :1])


def sine2d(p):
    return torch.sin(PI * p[:, :1]) * torch.sin(PI * p[:, 1:])


def zero(p):
    return p[:, :1] * 0


def fit(target=sine, domain=((0, 1),), family="mlp", **kw):
    return fit_function(target, list(domain), family, **{"epochs": 2, **kw})


def solve(u=sine, f=forcing, domain=((0, 1),), family="mlp", **kw):
    return solve_poisson(u, f, list(domain), family, **{"epochs": 2, **kw})


@pytest.mark.parametrize("call,message", [
    # what the target returns, on the points the run samples
    (lambda: fit(lambda x: torch.sin(PI * x[:, 0])), r"target must return an \(N, 1\) float tensor .* got \(1000,\)"),
    (lambda: fit(lambda x: torch.cat([x, x], 1)), r"got \(1000, 2\)"),
    (lambda: fit(lambda x: torch.ones(1, 1, dtype=torch.float64)), r"got \(1, 1\) for N = 1000"),
    (lambda: fit(lambda x: x.tolist()), "got list"),
    (lambda: fit(lambda x: torch.where(x < 0.5, x, x / 0)), "target is not finite at .* of the 1000 training points"),
    (lambda: fit(lambda x: torch.where(x < 1, x, float("nan"))), "target is not finite at 1 of the 10000 dense grid"),
    # domains
    (lambda: fit(domain=[]), "domain must be a non-empty list of"),
    (lambda: fit(domain=[0, 1]), r"domain must be a list of \(lo, hi\) pairs.*one pair: \[\[0, 1\]\]"),
    (lambda: fit_function(sine, (0, 1), "mlp", epochs=2), r"one pair: \[\(0, 1\)\]"),
    (lambda: fit(domain=[(0, 1, 2)]), r"domain\[0\] must be a \(lo, hi\) pair"),
    (lambda: fit_function(sine, "ab", "mlp", epochs=2), "domain must be a non-empty list"),
    (lambda: fit(domain=[(1, 0)]), r"domain\[0\] must have lo < hi, got \(1, 0\)"),
    (lambda: fit(domain=[(0, math.inf)]), r"domain\[0\] must hold finite numbers"),
    (lambda: fit(domain=[(0, math.nan)]), r"domain\[0\] must hold finite numbers"),
    (lambda: fit(domain=[(0, "1")]), r"domain\[0\] must be a \(lo, hi\) pair of numbers"),
    (lambda: fit(domain=[(0, 1)] * 3), "domain has 3 dimensions; 1 or 2 are supported"),
    # the model
    (lambda: fit(family="transformer"), "unknown family 'transformer'"),
    (lambda: fit(family="kan", grids=()), "grids must be a non-empty, increasing sequence"),
    (lambda: fit(family="kan", grids=(5, 3)), r"grids must be .* got \(5, 3\)"),
    (lambda: fit(family="kan", grids=(0, 3)), "grids must be"),
    (lambda: fit(family="kan", grids=(3.5, 5)), "grids must be"),
    (lambda: fit(width=0), "width must be a whole number of at least 1, got 0"),
    (lambda: fit(family="siren", width=2.5), "width must be a whole number"),
    (lambda: fit(family="kan", width=[2, 1, 1]), r"width list \[1, \.\.\., 1\] .* got \[2, 1, 1\]"),
    (lambda: fit(family="kan", width=[1, 3, 2]), "width list"),
    (lambda: fit(family="kan", width=[1, 0, 1]), "width list"),
    (lambda: fit(depth=1), "depth must be a whole number of at least 2"),
    (lambda: fit(activation="gelu"), "activation must be one of tanh, relu, silu"),
    (lambda: fit(family="kan_pruning", prune_lamb=math.inf), "prune_lamb must be a positive finite number"),
    (lambda: fit(family="kan_pruning", prune_node_th=0), "prune_node_th must be a positive finite number"),
    (lambda: fit(family="kan_pruning", prune_edge_th=math.nan), "prune_edge_th must be a positive finite number"),
    (lambda: fit(family="mlp", grids=(3, 5)), "unknown settings grids"),
    # the run
    (lambda: fit(device="gpu"), "device must be one of auto, cpu, cuda"),
    (lambda: fit(seed=-1), r"seed must be a whole number in \[0, 2\*\*32\)"),
    (lambda: fit(seed=2 ** 32), "seed must be"),
    (lambda: fit(seed=1.0), "seed must be"),
    (lambda: fit(epochs=0), "epochs must be a positive whole number"),
    (lambda: fit(epochs=True), "epochs must be a positive whole number"),
    (lambda: fit(dtype="float16"), "dtype must be"),
])
def test_fit_function_refuses_bad_problems_in_one_line(call, message):
    with pytest.raises(ValueError, match=message) as e:
        call()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("call,message", [
    (lambda: solve(u=lambda p: torch.cos(PI * p[:, :1])), r"u must vanish on the boundary .* u\(\[0\.0\]\) = 1"),
    (lambda: solve(u=lambda p: p[:, :1] * (1 - p[:, :1]) + 1e-3), "u must vanish on the boundary"),
    (lambda: solve(u=lambda p: sine2d(p) + 0.1 * p[:, :1], domain=[(0, 1), (0, 1)]), "u must vanish on the boundary"),
    (lambda: solve(u=lambda p: torch.sin(PI * p[:, 0])), r"u must return an \(N, 1\) float tensor"),
    (lambda: solve(f=lambda p: PI ** 2 * torch.sin(PI * p)[:, 0]), r"f must return an \(N, 1\)"),
    (lambda: solve(f=lambda p: p[:, :1] / 0), "f is not finite"),
    (lambda: solve(u=lambda p: torch.where(p < 0.5, torch.sin(PI * p), p * math.nan)), "u is not finite"),
    (lambda: solve(mode="supervised", u=lambda p: torch.cat([p, p], 1)), r"u must return an \(N, 1\)"),
    (lambda: solve(alpha=-1), "alpha must be a positive finite number, got -1"),
    (lambda: solve(alpha=math.inf), "alpha must be a positive finite number"),
    (lambda: solve(sign=0), r"sign must be -1 \(-Lap u = f\) or \+1"),
    (lambda: solve(sign=True), "sign must be"),
    (lambda: solve(mode="least-squares"), "mode must be 'pinn' or 'supervised'"),
    (lambda: solve(n_interior=0), "n_interior must be a whole number of at least 1"),
    (lambda: solve(n_boundary=0), "n_boundary must be a whole number of at least 2"),
    (lambda: solve(n_boundary=3, domain=[(0, 1), (0, 1)], u=sine2d), "n_boundary must be a whole number of at least 4"),
    (lambda: solve(u=zero, f=zero, domain=[(0, 1)] * 3), "domain has 3 dimensions"),
    (lambda: solve(family="kan", width=[1, 5, 1], domain=[(0, 1), (0, 1)]), r"width list \[2, \.\.\., 1\]"),
    (lambda: solve(u=None), "u must be a function"),
])
def test_solve_poisson_refuses_bad_problems_in_one_line(call, message):
    with pytest.raises(ValueError, match=message) as e:
        call()
    assert "\n" not in str(e.value)


def test_good_problems_still_train():
    """The KAN paper's problem, whose u is zero on the boundary to rounding (sin(pi) = 1.2e-16), and a
    fit with numpy numbers where Python numbers are expected."""
    import numpy as np
    spec_u = lambda p: torch.sin(PI * p[:, :1]) * torch.sin(PI * p[:, 1:] ** 2)  # noqa: E731
    df, model = solve(u=spec_u, f=zero, domain=[(-1, 1), (-1, 1)], sign=1, epochs=1, depth=2,
                      n_interior=100, n_boundary=40)
    assert len(df) == 1 and model(torch.zeros(3, 2, dtype=torch.float64)).shape == (3, 1)
    df, _ = fit(domain=[(np.float64(0), np.int64(1))], seed=np.int64(3), epochs=1, depth=2)
    assert df["seed"].tolist() == [3] and math.isfinite(df["dense_mse"].iloc[0])
