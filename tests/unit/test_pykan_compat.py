"""The deterministic least-squares fix to pykan (utils/pykan_compat.py)."""
import importlib

import pytest
import torch

from utils.models import pykan_compat
from utils.models.kan import make_kan


def test_installed_in_the_modules_pykan_calls_it_from():
    make_kan([1, 2, 1], 3)
    for name in ("kan.spline", "kan.KANLayer", "kan.MultKAN"):
        assert importlib.import_module(name).curve2coef is pykan_compat.curve2coef
    assert importlib.import_module("kan.spline").B_batch is pykan_compat.B_batch
    with pykan_compat.original():
        assert importlib.import_module("kan.spline").B_batch is not pykan_compat.B_batch
    assert importlib.import_module("kan.spline").B_batch is pykan_compat.B_batch


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_b_batch_equals_pykans(k):
    """Values and x-gradients on non-uniform grids, with points outside the grid."""
    from kan.spline import extend_grid
    original = pykan_compat._ORIGINALS[("kan.spline", "B_batch")]
    g = torch.Generator().manual_seed(k)
    grid = extend_grid(torch.sort(torch.rand(3, 8, generator=g, dtype=torch.float64) * 2 - 1, 1)[0], k)
    x = (torch.rand(500, 3, generator=g, dtype=torch.float64) * 3 - 1.5).requires_grad_(k > 0)
    ref, ours = original(x, grid, k=k).double(), pykan_compat.B_batch(x, grid, k=k)
    assert ours.shape == ref.shape and (ours - ref).abs().max().item() < 1e-12
    one_row = grid[:1]  # pykan also broadcasts a single grid over all inputs
    assert (pykan_compat.B_batch(x, one_row, k=k) - original(x, one_row, k=k).double()).abs().max() < 1e-12
    if k:
        (g_ref,) = torch.autograd.grad((ref ** 2).sum(), x)
        (g_ours,) = torch.autograd.grad((ours ** 2).sum(), x)
        assert (g_ours - g_ref).abs().max().item() < 1e-10


def test_same_solution_as_pykans_original():
    from kan.spline import B_batch, extend_grid
    g = torch.Generator().manual_seed(0)
    grid = extend_grid(torch.sort(torch.rand(2, 11, generator=g), 1)[0], 3)
    x = torch.rand(500, 2, generator=g)
    y = torch.rand(500, 2, 3, generator=g)
    ours = pykan_compat.curve2coef(x, y, grid, 3)
    mat = B_batch(x, grid, 3).permute(1, 0, 2)[:, None].expand(2, 3, 500, 13)
    ref = torch.linalg.lstsq(mat.double(), y.permute(1, 2, 0).unsqueeze(3).double()).solution[..., 0]
    assert ((ours.double() - ref).norm() / ref.norm()) < 1e-5


def test_grid_update_is_bitwise_reproducible_across_allocations():
    """gelsy gave different bits for the same inputs depending on memory layout (issue 6)."""
    states = []
    for i in range(4):
        junk = [torch.empty(37 * i + 1).fill_(i) for _ in range(i)]  # shift the allocator's state
        x = torch.rand(1000, 1, generator=torch.Generator().manual_seed(0))
        model = make_kan([1, 5, 1], 5, seed=3)
        model.update_grid(x)
        model.cache_data = x
        states.append(model.refine(10).state_dict())
        del junk
    for s in states[1:]:
        assert all(torch.equal(s[k], states[0][k]) for k in s)


def test_collapsed_grid_is_an_error_before_lapack_sees_it(capfd):
    """Constant samples collapse a grid: a LinAlgError (the caller undoes the update), and LAPACK
    prints nothing to stdout (MKL printed an error line for each such solve)."""
    model = make_kan([1, 3, 1], 5, seed=0)
    with pytest.raises(torch.linalg.LinAlgError, match="collapsed grid"):
        model.update_grid(torch.full((200, 1), 0.5))
    out, err = capfd.readouterr()
    assert "MKL" not in out + err and "SGELSD" not in out + err


def test_a_kan_pruned_to_nothing_is_built_quietly(capfd):
    """pykan builds a layer without outputs when pruning removes every hidden node; its least squares has
    no right-hand side, for which MKL printed 'Parameter 4 was incorrect on entry to SLALSD' to stdout."""
    model = make_kan([1, [0, 0], 1], 3, seed=0)
    assert model.act_fun[0].coef.shape == (1, 0, 6)
    out, err = capfd.readouterr()
    assert "MKL" not in out + err
