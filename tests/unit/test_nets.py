"""Stacked MLPs and SIRENs: the single modules' numbers, and forward-mode derivatives (issues 11, 12)."""
import pytest
import torch

from utils.engine import nets
from utils.engine.nets import StackedNet
from utils.problems.data import derivatives


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


@pytest.mark.parametrize("family,activation", [("mlp", "tanh"), ("mlp", "relu"), ("mlp", "silu"), ("siren", "sine")])
@pytest.mark.parametrize("n_in,depth", [(1, 2), (2, 3), (2, 6)])
def test_members_are_the_single_modules(family, activation, n_in, depth, dtype):
    """Member b is initialized as the module built after torch.manual_seed(seed b), and computes its outputs
    and parameter gradients (autograd through the plain torch module, the reference)."""
    net = StackedNet(family, n_in, 5, depth, activation)
    X = net.init([3, 4, 5]).requires_grad_(True)
    x = torch.rand(3, 200, n_in)
    out = net.forward(X, x)
    (gX,) = torch.autograd.grad(out.pow(2).sum(), X)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for b, seed in enumerate((3, 4, 5)):
        torch.manual_seed(seed)
        module = net.module()  # built the way a one-model run builds it
        ref = module(x[b])
        assert rel(out[b], ref) < tol
        grads = torch.autograd.grad(ref.pow(2).sum(), list(module.parameters()))
        assert rel(gX[b, :net.n_params], torch.cat([g.reshape(-1) for g in grads])) < tol * 10
        assert (gX[b, net.n_params:] == 0).all()  # the row's alignment padding is never used


@pytest.mark.parametrize("family,activation", [("mlp", "tanh"), ("mlp", "relu"), ("mlp", "silu"), ("siren", "sine")])
@pytest.mark.parametrize("n_in,depth", [(1, 2), (1, 4), (2, 3), (2, 6)])
def test_forward_mode_laplacian_equals_nested_autograd(family, activation, n_in, depth, float64):
    """Value, gradient and Laplacian propagated forward through the layers, against nested autograd through
    each member's module, in float64 on random inputs and random parameters: 1e-10."""
    net = StackedNet(family, n_in, 5, depth, activation)
    g = torch.Generator().manual_seed(depth)
    X = net.init([0, 1]) * (1 + torch.randn(2, net.row_size, generator=g) * 0.5)  # random, at the init's scale
    x = torch.rand(2, 300, n_in, generator=g) * 2 - 1
    u, grad, lap = net.derivatives(X, x)
    for b in range(2):
        ru, rg, rl = derivatives(net.module(X[b]), x[b], create_graph=False)
        assert rel(u[b], ru) < 1e-10 and rel(grad[b], rg) < 1e-10
        assert rel(lap[b], rl) < 1e-10 or (activation == "relu" and lap[b].abs().max() == rl.abs().max() == 0)
    # the Laplacian is differentiable in the parameters, as PINN training needs
    Xr = X.clone().requires_grad_(True)
    (gX,) = torch.autograd.grad(net.derivatives(Xr, x)[2].pow(2).sum(), Xr)
    assert torch.isfinite(gX).all() and (activation == "relu" or gX.abs().sum() > 0)


@pytest.mark.parametrize("family,activation,written", [("mlp", "tanh", True), ("mlp", "tanh", False),
                                                       ("mlp", "relu", False), ("mlp", "silu", True),
                                                       ("mlp", "silu", False), ("siren", "sine", True),
                                                       ("siren", "sine", False)])
@pytest.mark.parametrize("n_in,depth", [(1, 2), (2, 3), (2, 5)])
def test_parameter_gradients_through_the_laplacian_equal_nested_autograd(family, activation, n_in, depth, written,
                                                                         float64, monkeypatch):
    """The gradient in the parameters of a loss on value, gradient and Laplacian, through the activation
    step's written-out backward (``_ActivationStep``) and through autograd, against autograd through nested
    autograd of each member's module, in float64 on random inputs, parameters and loss weights: 1e-10."""
    monkeypatch.setattr(nets, "WRITTEN_BACKWARD", {activation} if written else set())
    net = StackedNet(family, n_in, 5, depth, activation)
    g = torch.Generator().manual_seed(10 + depth)
    X = net.init([0, 1]) * (1 + torch.randn(2, net.row_size, generator=g) * 0.5)
    x = torch.rand(2, 200, n_in, generator=g) * 2 - 1
    w = [torch.randn(2, 200, k, generator=g) for k in (1, n_in, 1)]
    Xr = X.clone().requires_grad_(True)
    (gX,) = torch.autograd.grad(sum((t * c).sum() for t, c in zip(net.derivatives(Xr, x), w)), Xr)
    for b in range(2):
        module = net.module(X[b])
        outs = derivatives(module, x[b], create_graph=True)
        ref = torch.autograd.grad(sum((t * c[b]).sum() for t, c in zip(outs, w)), list(module.parameters()),
                                  allow_unused=True)
        ref = torch.cat([(r if r is not None else torch.zeros_like(p)).reshape(-1)
                         for r, p in zip(ref, module.parameters())])
        assert rel(gX[b, :net.n_params], ref) < 1e-10
