"""The lean L-BFGS takes the same steps as torch.optim.LBFGS (issue 6): same algorithm, cheaper bookkeeping."""
import numpy as np
import pytest
import torch

from utils.lbfgs import LBFGS
from utils.training import LBFGS_OPTIONS


def rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def tiny_mlp_loss(x):
    """A 1-16-16-1 tanh MLP fit to sin(6 t), parameters packed in x."""
    t = torch.linspace(-1, 1, 64, dtype=x.dtype)[:, None]
    w1, b1, w2, b2, w3 = torch.split(x, [16, 16, 256, 16, 16])
    h = torch.tanh(t @ w1[None] + b1)
    h = torch.tanh(h @ w2.view(16, 16) + b2)
    return ((h @ w3[:, None]).squeeze(1) - torch.sin(6 * t[:, 0])).pow(2).mean()


def with_grad(f):
    """The optimizer's objective: a float64 NumPy vector in, (loss, gradient vector) out."""
    def fun(x):
        x = torch.from_numpy(x).requires_grad_(True)
        loss = f(x)
        (g,) = torch.autograd.grad(loss, x)
        return loss.item(), g.numpy()
    return fun


def rel(x, p):
    """Relative difference between our iterate (NumPy) and torch's parameter."""
    p = p.detach()
    return ((torch.from_numpy(x) - p).norm() / p.norm()).item()


def torch_lbfgs(f, x0):
    """The reference: torch.optim.LBFGS as pykan's fit() configures it."""
    p = torch.nn.Parameter(x0.clone())
    ref = torch.optim.LBFGS([p], **LBFGS_OPTIONS, line_search_fn="strong_wolfe")

    def closure():
        ref.zero_grad()
        loss = f(p)
        loss.backward()
        return loss

    return p, ref, closure


@pytest.mark.parametrize("f, n", [(rosenbrock, 12), (tiny_mlp_loss, 320)], ids=["rosenbrock", "mlp"])
def test_iterates_equal_torch_lbfgs(f, n):
    """Three steps of 20 iterations (the history of 10 wraps around), in float64.

    Rounding differs (inner products are summed in another order), and on the non-convex MLP the
    trajectories separate by about 100x per step: 1e-15, 1e-12, 2e-11, then 2e-8 at the 4th step.
    """
    torch.manual_seed(0)
    x0 = torch.randn(n, dtype=torch.float64) * 0.5
    p, ref, closure = torch_lbfgs(f, x0)
    ours, x = LBFGS(**LBFGS_OPTIONS), x0.numpy().copy()
    for step in range(3):
        ref.step(closure)
        x = ours.step(with_grad(f), x)
        err = rel(x, p)
        assert err < 1e-9, f"step {step}: relative difference {err:.1e}"
    assert f(torch.from_numpy(x)) < 0.5 * f(x0)  # and the steps make progress (the comparison is not between two no-ops)


def ill_conditioned_quadratic(n=40, seed=0):
    """0.5 x'Ax - b'x with eigenvalues 1..1e3: 20 iterations do not converge, nothing amplifies rounding."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.logspace(0, 3, n, dtype=torch.float64)) @ Q.t()
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return lambda x: 0.5 * x @ (A @ x) - b @ x


def test_history_carries_over_when_x_is_changed_between_steps():
    """pykan's grid updates replace the parameters between steps; torch keeps its history then too."""
    f = ill_conditioned_quadratic()
    x0 = torch.randn(40, dtype=torch.float64)
    p, ref, closure = torch_lbfgs(f, x0)
    ours, x = LBFGS(**LBFGS_OPTIONS), x0.numpy().copy()
    for step in range(3):
        ref.step(closure)
        x = ours.step(with_grad(f), x)
        assert rel(x, p) < 1e-8  # rounding grows: 1e-13, 2e-11, 1e-9
        with torch.no_grad():
            p.mul_(0.9)
        x = x * 0.9


def test_converged_start_returns_x_unchanged():
    x = np.ones(5)
    assert LBFGS(**LBFGS_OPTIONS).step(with_grad(rosenbrock), x) is x


def test_nan_objective_ends_the_step_like_torch():
    """A diverged model gives NaN losses: the step returns after as many evaluations as torch's."""
    nan_loss = lambda x: x.sum() * float("nan")  # noqa: E731
    calls = []
    p, ref, closure = torch_lbfgs(nan_loss, torch.zeros(3))
    ref.step(lambda: (calls.append("torch"), closure())[1])
    fun = with_grad(nan_loss)
    LBFGS(**LBFGS_OPTIONS).step(lambda x: (calls.append("ours"), fun(x))[1], np.zeros(3))
    assert 0 < calls.count("ours") == calls.count("torch") <= 30
