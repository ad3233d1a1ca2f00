"""The compiled regression objective equals autograd through pykan's own forward (issue 6)."""
import copy

import pytest
import torch

from utils import kan_fast, kan_numba, pykan_compat
from utils.lbfgs import LBFGS
from utils.models import make_kan
from utils.datasets import FUNCTIONS_1D, RegressionProblem
from utils.training import (LBFGS_OPTIONS, AutogradObjective, Recorder, kan_objective, prune, refine,
                            safe_update_grid, train_kan)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def pykan_loss_and_grad(model, x, y):
    """The reference: autograd through pykan's own forward, as released."""
    params = kan_fast.trainable_params(model)
    with pykan_compat.original():
        loss = torch.mean((model(x) - y) ** 2)
    return loss.item(), torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])


def perturbed(model, scale=0.3):
    """Random parameters, so that every term of the gradient is exercised."""
    with torch.no_grad():
        for p in kan_fast.trainable_params(model):
            p.add_(torch.randn_like(p) * scale)
    return model


@pytest.mark.parametrize("G", [3, 10, 100])
@pytest.mark.parametrize("width", [[1, 5, 1], [2, 5, 1], [2, 3, 2, 2]])
def test_loss_and_gradient_match_pykan(G, width, dtype):
    torch.manual_seed(G)
    model = perturbed(make_kan(width, G, seed=G))
    x = torch.rand(400, width[0]) * 2.6 - 1.3   # some points outside the grid: no spline there
    y = (torch.sin(3 * x[:, :1]) + x[:, -1:] ** 2) * torch.arange(1, width[-1] + 1)
    objective = kan_numba.MSEObjective(model, x, y)
    loss, grad = objective(objective.x0())
    grad = torch.from_numpy(grad)
    # the truth: pykan in float64 at the same parameters
    ref_loss, ref_grad = pykan_loss_and_grad(copy.deepcopy(model).double(), x.double(), y.double())
    if dtype == torch.float64:
        assert abs(loss - ref_loss) <= 1e-12 * ref_loss
        assert rel(grad, ref_grad) < 1e-11
    else:  # float32 gradients at G=100 are ill-conditioned (2e-5 for pykan itself): as accurate as pykan's
        pykan_err = rel(pykan_loss_and_grad(model, x, y)[1].double(), ref_grad)
        assert abs(loss - ref_loss) <= 1e-6 * ref_loss
        assert rel(grad, ref_grad) <= max(2 * pykan_err, 1e-6)


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)


def test_pruned_refined_model_with_frozen_parameters(float64):
    """Masked edges, data-adapted grids, and parameters that are not trained get no gradient entry."""
    model = make_kan([1, 5, 1], 5, seed=0)
    x = torch.rand(300, 1)
    y = torch.sin(6 * x)
    safe_update_grid(model, x)
    model = refine(model, 10, x)
    with torch.no_grad():
        model.act_fun[1].scale_sp[:2] = 0
        model.act_fun[1].scale_base[:2] = 0
        model.act_fun[1].coef[:2] = 0
    model = prune(model, x)
    assert model.width[1][0] < 5
    model.act_fun[0].scale_base.requires_grad_(False)
    objective = kan_numba.MSEObjective(model, x, y)
    theta = objective.x0() + 0.01 * torch.randn(objective.x0().shape).numpy()
    loss, grad = objective(theta)
    grad = torch.from_numpy(grad)
    objective.set(theta)  # the model now holds theta: the reference evaluates it there
    ref_loss, ref_grad = pykan_loss_and_grad(model, x, y)
    assert grad.shape == ref_grad.shape
    assert abs(loss - ref_loss) <= 1e-12 * ref_loss
    assert rel(grad, ref_grad) < 1e-11


def test_training_steps_equal_autograd_training(float64):
    """Two LBFGS steps on the compiled objective and on autograd through the torch forward.

    Rounding differs between the two; the trajectories then separate (measured 6e-14, 1e-12,
    3e-7, 3e-5 after 1-4 steps), so two steps are compared.
    """
    x = torch.rand(500, 1)
    y = torch.sin(4 * x)
    models = [make_kan([1, 5, 1], 5, seed=0) for _ in range(2)]
    objectives = [kan_numba.MSEObjective(models[0], x, y),
                  AutogradObjective(kan_fast.trainable_params(models[1]),
                                    lambda: torch.mean((kan_fast.forward(models[1], x) - y) ** 2))]
    for objective in objectives:
        opt = LBFGS(**LBFGS_OPTIONS)
        for _ in range(2):
            objective.set(opt.step(objective, objective.x0()))
    final = [torch.from_numpy(objective.x0()) for objective in objectives]
    assert rel(final[0], final[1]) < 1e-9
    assert objectives[1](final[1].numpy())[0] < 1e-2 * torch.mean(y ** 2).item()  # it trained


def test_other_spline_orders_train_through_autograd():
    """Only cubic splines are compiled; a k=2 KAN is refused there and trained with autograd."""
    model = make_kan([1, 3, 1], 5, k=2, seed=0)
    x = torch.rand(100, 1)
    with pytest.raises(ValueError, match="cubic"):
        kan_numba.MSEObjective(model, x, torch.sin(x))
    problem = RegressionProblem("sin_freq1", FUNCTIONS_1D["sin_freq1"], seed=0, dataset_idx=0)
    assert isinstance(kan_objective(model, problem)(), AutogradObjective)
    assert isinstance(kan_objective(make_kan([1, 3, 1], 5, seed=0), problem)(), kan_numba.MSEObjective)


def test_training_objective_is_rebuilt_when_a_grid_update_moves_the_grids():
    """The compiled objective copies the grids: reused between steps, rebuilt after update_grid."""
    problem = RegressionProblem("sin_freq2", FUNCTIONS_1D["sin_freq2"], seed=0, dataset_idx=1)
    model = make_kan([1, 5, 1], 5, seed=0)
    make_objective = kan_objective(model, problem)
    first = make_objective()
    assert make_objective() is first
    safe_update_grid(model, problem.train_x)
    rebuilt = make_objective()
    assert rebuilt is not first
    theta = rebuilt.x0()
    fresh = kan_numba.MSEObjective(model, problem.train_x, problem.train_y)
    assert rebuilt(theta)[0] == fresh(theta)[0]
    assert rebuilt(theta)[0] != first(theta)[0]  # the old grids give another loss


def test_trained_model_is_still_a_working_pykan_kan(tmp_path):
    """Training writes pykan's own parameters: pykan's forward agrees, and its plot and symbolic
    fitting run on the result (a grid-extended, grid-updated model)."""
    import matplotlib
    matplotlib.use("Agg")
    problem = RegressionProblem("sin_freq1", FUNCTIONS_1D["sin_freq1"], seed=0, dataset_idx=0)
    recorder = Recorder(problem, {})
    model = train_kan(problem, 6, recorder, seed=0, grids=(3, 5))
    assert recorder.rows[-1]["test_loss"] < 1e-3 * problem.zero_loss
    with pykan_compat.original():
        ours, theirs = kan_fast.forward(model, problem.test_x), model(problem.test_x)
    assert rel(ours, theirs) < 1e-6
    model.plot(folder=str(tmp_path))
    assert len(list(tmp_path.glob("*.png"))) == 10  # one per edge of [1, 5, 1]
    model.fix_symbolic(0, 0, 0, "sin", verbose=False, log_history=False)  # fits a, b, c, d of c sin(a x + b) + d
    assert model.symbolic_fun[0].mask[0, 0] == 1
