"""The fast KAN forward equals pykan's own forward, in outputs and gradients (issue 6)."""
import copy

import pytest
import torch

from utils import kan_fast, pykan_compat
from utils.models import make_kan
from utils.training import prune, safe_update_grid


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()  # both exactly zero counts as equal


def grads(out, inputs):
    return torch.autograd.grad(out.pow(2).sum(), inputs, allow_unused=False)


@pytest.mark.parametrize("G", [3, 10, 100])
@pytest.mark.parametrize("width", [[1, 5, 1], [2, 5, 1], [2, 3, 2, 1]])
def test_outputs_and_gradients_match_pykan(G, width, dtype):
    torch.manual_seed(G)
    model = make_kan(width, G, seed=G)
    # random inputs, some outside pykan's grid range [-1, 1] (no spline there, only the base)
    x = (torch.rand(400, width[0]) * 2.6 - 1.3).requires_grad_(True)
    with pykan_compat.original():  # the reference is pykan as released
        ref = model(x)
    fast = kan_fast.forward(model, x)
    params = kan_fast.trainable_params(model)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert rel(fast, ref) < tol
    for g_fast, g_ref in zip(grads(fast, [x] + params), grads(ref, [x] + params)):
        assert rel(g_fast, g_ref) < tol * 10


@pytest.mark.parametrize("G", [3, 20])
def test_second_derivatives_match_pykan(G, dtype):
    """Used for PDE residuals: Laplacian terms equal pykan's."""
    model = make_kan([2, 5, 1], G, seed=1)
    x = torch.rand(300, 2, requires_grad=True)
    hess = []
    with pykan_compat.original():
        ref = model(x)
    for out in (ref, kan_fast.forward(model, x)):
        d = torch.autograd.grad(out.sum(), x, create_graph=True)[0]
        hess.append(torch.autograd.grad(d[:, 0].sum(), x, create_graph=True)[0])
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert rel(hess[1], hess[0]) < tol
    # and the second derivative itself is differentiable in the parameters, as training needs
    (g,) = torch.autograd.grad(hess[1].pow(2).sum(), [model.act_fun[0].coef])
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_matches_after_grid_update_refine_and_prune(dtype):
    """Non-uniform data-adapted grids, refined grids and pruned (masked) edges."""
    torch.manual_seed(0)
    model = make_kan([1, 5, 1], 5, seed=0)
    x = torch.rand(500, 1)
    safe_update_grid(model, x)
    assert not torch.allclose(model.act_fun[0].grid[0, 4:6].diff(), model.act_fun[0].grid[0, 6:8].diff())
    model.cache_data = x
    model = model.refine(20)
    model.auto_save = False
    with torch.no_grad():  # make some hidden nodes inactive so that pruning removes them
        model.act_fun[1].scale_sp[:3] = 0
        model.act_fun[1].scale_base[:3] = 0
        model.act_fun[1].coef[:3] = 0
    pruned = prune(model, x)
    assert pruned.width[1][0] < 5
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for m in (model, pruned):
        xi = torch.rand(300, 1, requires_grad=True)
        with pykan_compat.original():
            ref = m(xi)
        fast = kan_fast.forward(m, xi)
        assert rel(fast, ref) < tol
        assert rel(grads(fast, [xi])[0], grads(ref, [xi])[0]) < tol * 10


def test_basis_cache_follows_grid_changes():
    """The first layer's bases are cached for fixed data and must be rebuilt when the grid moves."""
    model = make_kan([1, 5, 1], 5, seed=0)
    x = torch.rand(200, 1)
    before = kan_fast.forward(model, x).detach()
    model.act_fun[0].grid.data = model.act_fun[0].grid.data * 0.5
    model.act_fun[0].grid.data = model.act_fun[0].grid.data * 2.0 + 0.1  # new tensor, new values
    with pykan_compat.original():
        ref = model(x)
    assert rel(kan_fast.forward(model, x), ref) < 1e-6
    assert not torch.allclose(kan_fast.forward(model, x), before)


def test_refuses_active_symbolic_functions():
    model = make_kan([1, 3, 1], 3, seed=0)
    model.fix_symbolic(0, 0, 0, "sin", fit_params_bool=False, verbose=False, log_history=False)
    with pytest.raises(ValueError, match="symbolic"):
        kan_fast.check_fast_path(model)



@pytest.mark.parametrize("G", [3, 20])
@pytest.mark.parametrize("width", [[1, 5, 1], [2, 3, 2, 1]])
def test_update_grid_matches_pykans(G, width, dtype):
    """Grids and coefficients after the fast update_grid equal pykan's own, on a copy of the model."""
    model = make_kan(width, G, seed=0)
    x = torch.rand(500, width[0]) * 1.6 - 0.8
    reference = copy.deepcopy(model)
    with pykan_compat.original():
        reference.update_grid(x)
    kan_fast.update_grid(model, x)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for ours, theirs in zip(model.act_fun, reference.act_fun):
        assert rel(ours.grid, theirs.grid) < tol
        assert rel(ours.coef, theirs.coef) < tol * 10
    assert not torch.equal(model.act_fun[0].grid, make_kan(width, G, seed=0).act_fun[0].grid)  # it moved
