"""PDE problems: f is the Laplacian of u with the right sign, u vanishes on the boundary (issue 4)."""
import math

import pytest
import torch
from function_model import NO_PARAMETERS, FunctionModel

from utils.engine.nets import StackedNet
from utils.problems.data import PoissonProblem, boundary_points, dense_grid, derivatives
from utils.problems.poisson import PROBLEMS
from utils.problems.stacked import StackedProblem
from utils.sections import SECTIONS

pytestmark = pytest.mark.usefixtures("float64")
PDE_NAMES = [*SECTIONS["section1_2"].problems, *SECTIONS["section1_3"].problems]


@pytest.mark.parametrize("name", PDE_NAMES)
def test_forcing_is_the_laplacian_of_u(name):
    pde = PROBLEMS[name]
    g = torch.Generator().manual_seed(0)
    lo = torch.tensor([d[0] for d in pde.domain])
    hi = torch.tensor([d[1] for d in pde.domain])
    x = lo + (hi - lo) * torch.rand(2000, pde.dim, generator=g, dtype=torch.float64)
    _, _, lap = derivatives(pde.u, x, create_graph=False)
    f = pde.f(x)
    assert ((pde.sign * lap - f).norm() / f.norm()).item() < 1e-6
    # and the sign matters: the opposite sign is far off (f is not identically zero)
    assert ((-pde.sign * lap - f).norm() / f.norm()).item() > 1


@pytest.mark.parametrize("name", PDE_NAMES)
def test_u_vanishes_on_the_boundary(name):
    pde = PROBLEMS[name]
    b = boundary_points(pde.domain, 800, torch.Generator().manual_seed(0), "cpu").double()
    lo, hi = [d[0] for d in pde.domain], [d[1] for d in pde.domain]
    on_face = torch.zeros(len(b), dtype=torch.bool)
    for i in range(pde.dim):
        on_face |= (b[:, i] == lo[i]) | (b[:, i] == hi[i])
    assert on_face.all()
    assert pde.u(b).abs().max().item() < 1e-12


def test_spec_problem_is_the_kan_papers():
    """Against the KAN paper's formulas written out here with math (not the project's torch code):
    u = sin(pi x) sin(pi y^2), f = -pi^2 (1 + 4 y^2) sin(pi x) sin(pi y^2) + 2 pi sin(pi x) cos(pi y^2)."""
    pde = PROBLEMS["poisson_2d_spec"]
    assert pde.domain == ((-1.0, 1.0), (-1.0, 1.0)) and pde.sign == +1
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(50, 2, generator=g, dtype=torch.float64) * 2 - 1)
    for (x, y), u, f in zip(pts.tolist(), pde.u(pts)[:, 0].tolist(), pde.f(pts)[:, 0].tolist()):
        pi = math.pi
        assert u == pytest.approx(math.sin(pi * x) * math.sin(pi * y * y), abs=1e-12)
        assert f == pytest.approx(-pi ** 2 * (1 + 4 * y * y) * math.sin(pi * x) * math.sin(pi * y * y)
                                  + 2 * pi * math.sin(pi * x) * math.cos(pi * y * y), abs=1e-10)


def test_dense_grids_cover_the_domain():
    g1 = dense_grid(((0.0, 1.0),), "cpu")
    g2 = dense_grid(((-1.0, 1.0), (-1.0, 1.0)), "cpu")
    assert g1.shape == (10_000, 1) and g2.shape == (10_000, 2)
    assert g2.min().item() == -1 and g2.max().item() == 1 and len(torch.unique(g2[:, 0])) == 100


def test_pinn_never_sees_the_exact_solution():
    """The pipeline's PINN loss (and its gradient) of a network: u is never called."""
    p = PoissonProblem("poisson_2d_sin", seed=0, dataset_idx=0, n_interior=200, n_boundary=40)
    stacked = StackedProblem([p])
    assert not hasattr(p, "train_y") and not hasattr(stacked, "y")
    calls = []
    exact = p.pde.u
    object.__setattr__(p.pde, "u", lambda x: calls.append(1) or exact(x))
    try:
        net = StackedNet("mlp", 2, 5, 2, "tanh")
        X = net.init([0], dtype=torch.float64).requires_grad_(True)
        torch.autograd.grad(stacked.loss(net, X).sum(), X)
    finally:
        object.__setattr__(p.pde, "u", exact)
    assert calls == []


def test_metrics_against_the_exact_solution():
    """The pipeline's metrics of the exact solution (no error, no residual) and of u = 0."""
    p = PoissonProblem("poisson_1d_sin", seed=0, dataset_idx=0)
    stacked = StackedProblem([p])
    [m] = stacked.evaluate(FunctionModel(p.pde.u), NO_PARAMETERS)
    assert m["dense_mse"] < 1e-28 and m["h1_error"] < 1e-24 and m["residual_mse"] < 1e-16
    assert m["train_loss"] < 1e-16
    [zero] = stacked.evaluate(FunctionModel(lambda x: torch.zeros_like(x[:, :1]) * x[:, :1]), NO_PARAMETERS)
    assert zero["dense_mse"] == pytest.approx(0.5, rel=1e-3)            # mean of sin^2
    assert zero["dense_rel_l2"] == pytest.approx(1.0)
    assert zero["h1_error"] == pytest.approx(math.pi ** 2 / 2, rel=1e-3)  # mean of (pi cos)^2
    # u = 0: the PINN loss is alpha * mean f^2 (the boundary term vanishes)
    assert zero["train_loss"] == pytest.approx(p.alpha * (p.f_train ** 2).mean().item(), rel=1e-12)


def test_relu_networks_are_evaluated_not_crashed():
    p = PoissonProblem("poisson_1d_poly", seed=0, dataset_idx=1)
    net = StackedNet("mlp", 1, 5, 3, "relu")
    [m] = StackedProblem([p]).evaluate(net, net.init([0], dtype=torch.float64))
    # a ReLU network has no second derivative: its residual is f itself, f = 2
    assert m["residual_mse"] == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize("name", PDE_NAMES)
def test_points_and_exact_values_are_float64(name):
    """u, its gradient and f at float64 points (computed at float32 points and cast up they carried the
    points' rounding: for sin(4 pi x) with amplitude 158, a dense MSE floor of ~1e-9)."""
    torch.set_default_dtype(torch.float32)  # what a float32 session has: the problem does not depend on it
    p = PoissonProblem(name, seed=0, dataset_idx=0, n_interior=50, n_boundary=8)
    for t in (p.train_x, p.train_b, p.f_train, p.dense_x, p.dense_u, p.dense_grad, p.dense_f):
        assert t.dtype == torch.float64
    assert torch.equal(p.dense_u, p.pde.u(p.dense_x)) and torch.equal(p.dense_f, p.pde.f(p.dense_x))
    assert torch.equal(p.f_train, p.pde.f(p.train_x))
    if name == "poisson_1d_highfreq":  # against math, independent of torch: float64 rounding
        xs = p.dense_x[:, 0].tolist()
        grad = [4 * math.pi * math.cos(4 * math.pi * v) for v in xs]
        assert max(abs(a - b) for a, b in zip(p.dense_grad[:, 0].tolist(), grad)) < 1e-12
        assert max(abs(a - math.sin(4 * math.pi * v)) for a, v in zip(p.dense_u[:, 0].tolist(), xs)) < 1e-15
