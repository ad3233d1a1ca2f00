"""Stacked KANs compute pykan's numbers: forward, derivatives, regularizer, grid update, refine (issues 6, 12).

The reference is always pykan as released (``pykan_compat.original()``) or autograd through it; each
member of a stack has its own grids (adapted to its own data), so a wrong member index shows.
"""
import contextlib
import copy

import pytest
import torch

from utils.engine.kan_stack import StackedKAN
from utils.models import pykan_compat
from utils.models.kan import make_kan, prune
from utils.numerics.splines import fit_coefficients, local_bases
from utils.problems.data import derivatives


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()  # both exactly zero counts as equal


def members(width, G, n=3, adapt=True):
    """n pykan KANs with different seeds, each grid adapted to its own data by pykan's update_grid."""
    models = [make_kan(width, G, seed=s) for s in range(n)]
    g = torch.Generator().manual_seed(G)
    x = torch.rand(n, 400, width[0], generator=g) * 2.6 - 1.3  # some points outside [-1, 1]: no spline there
    if adapt:
        for b, m in enumerate(models):
            with pykan_compat.original():
                m.update_grid(x[b] * (0.6 + 0.1 * b))
    return models, x


def pykan_out(model, x):
    with pykan_compat.original():
        return model(x)


@contextlib.contextmanager
def pykan_in_float64():
    """pykan as released, with float64 as the default dtype (for what it builds itself)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with pykan_compat.original():
            yield
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("G", [3, 10, 100])
@pytest.mark.parametrize("width", [[1, 5, 1], [2, 5, 1], [2, 3, 2, 1]])
def test_forward_and_parameter_gradients_match_pykan(G, width, dtype):
    models, x = members(width, G)
    stacked, X = StackedKAN.from_pykan(models)
    X = X.requires_grad_(True)
    out = stacked.forward(X, x)
    (gX,) = torch.autograd.grad(out.pow(2).sum(), X)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for b, m in enumerate(models):
        ref = pykan_out(m, x[b])
        assert rel(out[b], ref) < tol
        params = [getattr(m.act_fun[l], n) for l in range(len(m.act_fun)) for n in ("coef", "scale_base", "scale_sp")]
        grads = torch.autograd.grad(ref.pow(2).sum(), params)
        assert rel(gX[b, :stacked.n_params], torch.cat([g.reshape(-1) for g in grads])) < tol * 10


@pytest.mark.parametrize("G", [3, 20])
@pytest.mark.parametrize("width", [[2, 5, 1], [2, 3, 2, 1], [1, 4, 1]])
def test_derivatives_match_nested_autograd(G, width, float64):
    """Value, gradient and Laplacian in x, forward-mode with closed-form spline derivatives, against
    nested autograd through pykan's own forward: 1e-10 in float64, random inputs and parameters."""
    models, x = members(width, G)
    g = torch.Generator().manual_seed(7)
    for m in models:  # random parameters, not the near-zero initial splines
        for layer in m.act_fun:
            layer.coef.data = torch.randn(layer.coef.shape, generator=g)
            layer.scale_base.data = torch.randn(layer.scale_base.shape, generator=g)
    stacked, X = StackedKAN.from_pykan(models)
    u, grad, lap = stacked.derivatives(X, x)
    for b, m in enumerate(models):
        with pykan_compat.original():
            ru, rg, rl = derivatives(m, x[b], create_graph=False)
        assert rel(u[b], ru) < 1e-10 and rel(grad[b], rg) < 1e-10 and rel(lap[b], rl) < 1e-10
    # and the Laplacian is differentiable in the parameters, as PINN training needs
    Xr = X.clone().requires_grad_(True)
    (gX,) = torch.autograd.grad(stacked.derivatives(Xr, x)[2].pow(2).sum(), Xr)
    assert torch.isfinite(gX).all() and gX[:, :stacked.n_params].abs().sum(1).min() > 0


def test_regularizer_is_pykans_fit_penalty(dtype):
    """pykan's get_reg('edge_forward_spline_n', 1, 2, 0, 0) after its forward, and its parameter gradient."""
    models, x = members([2, 5, 1], 5)
    for m in models[1:]:
        m.act_fun[1].mask.data[2, 0] = 0  # a pruned edge
    stacked, X = StackedKAN.from_pykan(models)
    X = X.requires_grad_(True)
    reg = stacked.regularizer(X, x)
    (gX,) = torch.autograd.grad(reg.sum(), X)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for b, m in enumerate(models):
        with pykan_compat.original():
            m(x[b])
            ref = m.get_reg("edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0)
        params = [getattr(m.act_fun[l], n) for l in range(2) for n in ("coef", "scale_base", "scale_sp")]
        grads = torch.autograd.grad(ref, params)
        assert abs(reg[b].item() - ref.item()) < tol * abs(ref.item())
        assert rel(gX[b, :stacked.n_params], torch.cat([g.reshape(-1) for g in grads])) < tol * 100


@pytest.mark.parametrize("G", [3, 20])
@pytest.mark.parametrize("width", [[1, 5, 1], [2, 3, 2, 1]])
def test_update_grid_matches_pykans(G, width, dtype):
    """Grids and coefficients after the batched update equal pykan's own update_grid, member by member.

    The reference runs in float64 for both dtypes: pykan's float32 least squares (gelsy) is itself
    off by up to ~1e-4 on the edge coefficients of G=20 (basis functions with few samples), and by
    a different amount from run to run (its result depends on memory alignment), so it cannot
    referee a float32 solve done in float64; against float64 pykan ours is within 2e-5 there.
    """
    models, x = members(width, G, adapt=False)
    stacked, X = StackedKAN.from_pykan(models)
    X2 = stacked.update_grid(X, x, torch.arange(len(models)))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for b, m in enumerate(models):
        ref = copy.deepcopy(m).to(torch.float64)
        with pykan_in_float64():
            ref.update_grid(x[b].double())
        for l, layer in enumerate(ref.act_fun):
            assert rel(stacked.grids[l][b].double(), layer.grid) < tol
            assert rel(stacked._layer_views(X2, l)[0][b].double(), layer.coef) < tol * 10
        assert rel(stacked.forward(X2, x)[b].double(), pykan_out(ref, x[b].double())) < tol * 10
    assert not torch.equal(stacked.grids[0][0], stacked.grids[0][1])  # each member's own grid


def test_collapsed_grid_update_is_undone_for_that_member_only():
    """Constant samples (a dead input) collapse a grid: that member keeps its state, the others update."""
    models, x = members([1, 3, 1], 5, adapt=False)
    x = x.clone()
    x[1] = 0.25  # member 1 sees one value only
    stacked, X = StackedKAN.from_pykan(models)
    before = [g.clone() for g in stacked.grids]
    X2 = stacked.update_grid(X, x, torch.arange(3))
    assert torch.equal(X2[1], X[1]) and all(torch.equal(g[1], b[1]) for g, b in zip(stacked.grids, before))
    assert not torch.equal(stacked.grids[0][0], before[0][0]) and not torch.equal(X2[2], X[2])


@pytest.mark.parametrize("width", [[1, 5, 1], [2, 3, 2, 1]])
def test_refine_matches_pykans(width, dtype):
    models, x = members(width, 5)
    stacked, X = StackedKAN.from_pykan(models)
    fine, Xf = stacked.refine(X, x, 12, torch.arange(3))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for b, m in enumerate(models):
        with pykan_in_float64():  # as in the grid update test, and refine builds its new KAN in it
            m.to(torch.float64)  # in place: a deepcopy refuses m, which holds its last forward's graph
            m.cache_data = x[b].double()
            ref = m.refine(12)
            for l, layer in enumerate(ref.act_fun):
                assert rel(fine.grids[l][b].double(), layer.grid) < tol
                assert rel(fine._layer_views(Xf, l)[0][b].double(), layer.coef) < tol * 10
            assert rel(fine.forward(Xf, x)[b].double(), ref(x[b].double())) < tol * 10


def test_least_squares_is_gelsds_minimum_norm_solution(float64):
    """Against LAPACK's gelsd on the dense collocation matrix, with and without empty intervals."""
    g = torch.Generator().manual_seed(0)
    k, G = 3, 10
    grid = torch.linspace(-1, 1, G + 1).expand(4, -1)
    grid = torch.cat([grid[:, :1] - 0.2 * torch.arange(k, 0, -1), grid, grid[:, -1:] + 0.2 * torch.arange(1, k + 1)], 1)
    x = torch.rand(4, 300, generator=g) * 2 - 1
    x[2] = x[2] * 0.3  # most intervals empty: rank deficient
    y = torch.randn(4, 2, 300, generator=g)
    coef = fit_coefficients(x, y, grid, k)
    from utils.numerics.splines import dense_basis
    for s in range(4):
        A = dense_basis(x[s][:, None], grid[s:s + 1], k)[0]
        ref = torch.linalg.lstsq(A, y[s].t(), driver="gelsd").solution.t()
        assert rel(coef[s], ref) < 1e-9, s


def test_local_bases_of_every_degree_are_pykans():
    """Degrees k, k-1, k-2 at once, each against pykan's B_batch of that degree."""
    from kan.spline import B_batch
    grid = torch.sort(torch.rand(2, 12), dim=1)[0] * 2 - 1
    x = torch.rand(2, 200) * 2 - 1
    Ns, m = local_bases(x, grid, 3, lowest=1)
    for N, r in zip(Ns, (3, 2, 1)):
        with pykan_compat.original():
            dense = B_batch(x.t(), grid, k=r)                 # (points, splines, G+r)
        cols = m.unsqueeze(1) - r + torch.arange(r + 1).view(1, -1, 1)
        ours = torch.zeros_like(dense.permute(1, 0, 2))
        ok = (cols >= 0) & (cols < dense.shape[2])
        ours.scatter_add_(2, cols.clamp(0, dense.shape[2] - 1).transpose(1, 2), (N * ok).transpose(1, 2))
        assert rel(ours, dense.permute(1, 0, 2)) < 1e-5


def test_a_pruned_member_is_a_working_pykan_kan(tmp_path):
    """Members written back are pykan KANs: pykan's forward agrees, and its prune, plot and auto_symbolic work."""
    models, x = members([1, 5, 1], 5)
    with torch.no_grad():  # make some hidden nodes inactive so that pruning removes them
        for layer_param in ("scale_sp", "scale_base", "coef"):
            getattr(models[0].act_fun[1], layer_param)[:3] = 0
    pruned = prune(models[0], x[0], 1e-2, 3e-2)
    assert pruned.width[1][0] < 5
    stacked, X = StackedKAN.from_pykan([pruned, pruned])
    assert rel(stacked.forward(X, x[:2])[0], pykan_out(pruned, x[0])) < 1e-6
    X2 = stacked.update_grid(X, x[:2], torch.arange(2))
    target = make_kan(pruned.width, pruned.grid)
    model = stacked.to_pykan(X2, 0, target)
    assert rel(stacked.forward(X2, x[:2])[0], pykan_out(model, x[0])) < 1e-6
    model.plot(folder=str(tmp_path / "fig"))
    model.get_act(x[0])
    model.auto_symbolic(lib=["x", "sin"], verbose=0)  # every active edge replaced by a fitted formula
    for numeric, symbolic in zip(model.act_fun, model.symbolic_fun):  # masks (in, out) and (out, in)
        assert bool((symbolic.mask.t()[numeric.mask > 0] == 1).all())
    assert torch.isfinite(model(x[0])).all()


def test_refuses_active_symbolic_functions():
    model = make_kan([1, 3, 1], 3, seed=0)
    model.fix_symbolic(0, 0, 0, "sin", fit_params_bool=False, verbose=False, log_history=False)
    with pytest.raises(ValueError, match="symbolic"):
        StackedKAN.from_pykan([model])
