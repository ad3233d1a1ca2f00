"""Datasets against their formulas, models' shapes and true parameter counts (issue 3)."""
import math

import numpy as np
import pytest
import torch
from function_model import NO_PARAMETERS, FunctionModel

from utils.config import N_DENSE_1D
from utils.engine.training import split_budget
from utils.models.kan import make_kan
from utils.models.modules import MLP, SIREN
from utils.models.saving import count_params
from utils.problems.data import RegressionProblem
from utils.problems.functions import FUNCTIONS_1D
from utils.problems.stacked import StackedProblem


def test_function_values_at_known_points():
    x = torch.tensor([[0.0], [0.125], [0.25], [0.29], [0.3], [0.59], [0.6], [0.79], [0.8], [0.99]])
    v = {n: f(x).squeeze(1).tolist() for n, f in FUNCTIONS_1D.items()}
    assert v["sin_freq1"][1] == pytest.approx(math.sin(math.pi / 4), abs=1e-6)
    assert v["sin_freq2"][1] == pytest.approx(1.0, abs=1e-6)
    assert v["sin_freq4"][1] == pytest.approx(0.0, abs=1e-5)
    assert v["piecewise"] == pytest.approx([-0.5, -0.5, -0.5, -0.5, 0.3, 0.3, 1.0, 1.0, -0.2, -0.2])
    assert v["sawtooth"][:3] == pytest.approx([0.0, 0.5, 0.0], abs=1e-6)
    assert v["polynomial"][2] == pytest.approx(0.25 ** 3 - 2 * 0.25 ** 2 + 0.25)
    assert v["poisson_1d_highfreq"][1] == pytest.approx(16 * math.pi ** 2 * math.sin(math.pi / 2), rel=1e-6)
    assert len(FUNCTIONS_1D) == 9


def test_sampling_on_training_domain_seeded_and_shared():
    fn = FUNCTIONS_1D["sin_freq3"]
    a = RegressionProblem("sin_freq3", fn, seed=0, dataset_idx=2)
    b = RegressionProblem("sin_freq3", fn, seed=0, dataset_idx=2)
    c = RegressionProblem("sin_freq3", fn, seed=1, dataset_idx=2)
    assert a.train_x.shape == (1000, 1) and a.test_x.shape == (1000, 1)
    assert 0 <= a.train_x.min() and a.train_x.max() <= 1 and 0 <= a.test_x.min() and a.test_x.max() <= 1
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    assert not torch.equal(a.train_x, a.test_x)
    # dense grid: 10,000 uniform points covering exactly [0, 1]
    assert a.dense_x.shape == (N_DENSE_1D, 1) and a.dense_x[0] == 0 and a.dense_x[-1] == 1
    assert torch.allclose(a.dense_x.diff(dim=0), torch.full((N_DENSE_1D - 1, 1), 1 / (N_DENSE_1D - 1),
                                                            dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", list(FUNCTIONS_1D))
def test_targets_are_the_function_at_float64_points(name):
    """Points and targets are float64, targets the function at those points: a target computed at
    float32 points and cast up is off by the points' rounding (sin(2 pi 5 x): ~1e-6), which limited the
    dense MSE of a perfect model to ~1e-13."""
    p = RegressionProblem(name, FUNCTIONS_1D[name], seed=0, dataset_idx=0)
    for x, y in ((p.train_x, p.train_y), (p.val_x, p.val_y), (p.test_x, p.test_y), (p.dense_x, p.dense_y)):
        assert x.dtype == y.dtype == torch.float64
        assert torch.equal(y, FUNCTIONS_1D[name](x))
    grid = p.dense_x[:, 0].tolist()
    assert grid == [i / (N_DENSE_1D - 1) for i in range(N_DENSE_1D)] or \
        max(abs(v - i / (N_DENSE_1D - 1)) for i, v in enumerate(grid)) <= 2.3e-16
    if name.startswith("sin_freq"):  # against math.sin, independent of torch: float64 rounding, not float32's
        nu = int(name[-1])
        ref = [math.sin(2 * math.pi * nu * v) for v in grid]
        assert max(abs(a - b) for a, b in zip(p.dense_y[:, 0].tolist(), ref)) < 1e-14


def test_evaluate_reports_mse_not_rmse():
    """The pipeline's metrics (the stacked problem's, for a one-member stack) of the zero function."""
    p = RegressionProblem("polynomial", FUNCTIONS_1D["polynomial"], seed=0, dataset_idx=7)
    [m] = StackedProblem([p]).evaluate(FunctionModel(torch.zeros_like), NO_PARAMETERS)  # errors: the targets
    assert m["train_loss"] == pytest.approx((p.train_y ** 2).mean().item(), rel=1e-6)
    xs = np.linspace(0, 1, N_DENSE_1D)
    assert m["dense_mse"] == pytest.approx(np.mean((xs ** 3 - 2 * xs ** 2 + xs) ** 2), rel=1e-5)
    assert m["dense_max_err"] == pytest.approx(4 / 27, rel=1e-5)  # max of x(1-x)^2 at x = 1/3


@pytest.mark.parametrize("depth", [2, 3, 6])
def test_mlp_depth_is_number_of_linear_layers(depth):
    m = MLP(1, 5, depth, "silu")
    assert sum(isinstance(l, torch.nn.Linear) for l in m.modules()) == depth
    assert count_params(m) == (1 * 5 + 5) + (depth - 2) * (5 * 5 + 5) + (5 + 1)


def test_siren_init_bounds():
    torch.manual_seed(0)
    s = SIREN(1, 5, 4, omega0=30.0)
    assert s.layers[0].weight.abs().max() <= 1.0
    for layer in s.layers[1:]:
        assert layer.weight.abs().max() <= math.sqrt(6 / 5) / 30
    assert count_params(s) == count_params(MLP(1, 5, 4))


@pytest.mark.parametrize("G", [3, 10, 100])
def test_kan_param_count_formula(G):
    k = 3
    m = make_kan([1, 5, 1], G, k=k)
    assert count_params(m) == 10 * (G + k + 2)  # 10 edges, each G+k coefficients + 2 scales
    m.act_fun[1].mask.data[2, 0] = 0  # a pruned edge no longer counts
    assert count_params(m) == 9 * (G + k + 2)
    # pykan's symbolic branch holds parameters that never shape the output
    assert sum(p.numel() for p in m.parameters()) > 10 * (G + k + 2)


@pytest.mark.parametrize("epochs,stages,expect", [(100, 6, [16] * 5 + [20]), (6, 6, [1] * 6),
                                                  (3, 6, [1, 1, 1]), (100, 7, [14] * 6 + [16])])
def test_split_budget(epochs, stages, expect):
    assert split_budget(epochs, stages) == expect and sum(split_budget(epochs, stages)) == epochs


def test_param_count_of_a_model_pruned_by_pykan():
    """pykan's own prune(): removed nodes take their edges along, pruned edges are masked; the count is
    what is left, as pykan's own per-edge parameters (coef, scale_base, scale_sp) of its unmasked edges."""
    from utils.models.kan import prune
    model = make_kan([2, 5, 1], 5, seed=0)
    x = torch.rand(300, 2)
    with torch.no_grad():  # silence hidden nodes 0-2 and input 1's edge to node 4, so pruning removes them
        for name in ("scale_sp", "scale_base", "coef"):
            getattr(model.act_fun[1], name)[:3] = 0
            getattr(model.act_fun[0], name)[1, 4] = 0
    pruned = prune(model, x, 1e-2, 3e-2)
    assert pruned.width[1][0] == 2
    expected = 0
    for layer in pruned.act_fun:
        for i, o in (layer.mask > 0).nonzero().tolist():
            expected += layer.coef[i, o].numel() + layer.scale_base[i, o].numel() + layer.scale_sp[i, o].numel()
    assert count_params(pruned) == expected < count_params(model)
