"""Merged MLP/SIREN networks: each member computes what its own StackedNet computes on its own row.

Bit for bit (``torch.equal``: float64, and float32 where a test says so; one torch thread, as tests
run) unless a test says otherwise: the merged program runs the same operations on each member's
rows, and a skipped layer is a ``where`` (a copy). The one exception is measured and bounded: the
parameter gradient, through ``derivatives``, of a depth-2 member whose activation step is autograd's
with an s'' term (tanh; silu and sine without ``WRITTEN_BACKWARD``). StackedNet keeps its first
layer's gradient in x broadcast over the points, here a skipped layer's ``where`` expands it, so
autograd adds the step's two contributions (through grad a and through |grad z|^2) before summing
over the points, not after: 1e-17 relative (measured), asserted < 1e-12. relu has one contribution,
and the written backward of silu and sine adds them first in both.
"""
import random

import pytest
import torch

from utils.engine import nets
from utils.engine.merged_nets import MergedNets, grouped_order
from utils.models.modules import MLP, SIREN, default_dtype
from utils.problems.data import PoissonProblem, RegressionProblem
from utils.problems.functions import FUNCTIONS_1D
from utils.problems.stacked import StackedProblem

pytestmark = pytest.mark.usefixtures("float64")
ALL = ([("mlp", a, d) for a in ("tanh", "relu", "silu") for d in range(2, 7)]
       + [("siren", "sine", d) for d in range(2, 7)])


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def draw(seed):
    """Every configuration, four of them twice, shuffled (not grouped by activation)."""
    rng = random.Random(seed)
    configs = ALL + rng.choices(ALL, k=4)
    rng.shuffle(configs)
    return configs


def make_problem(mode, n_in, B):
    """B small problems of one kind (each member its own data)."""
    if mode == "pinn":
        name = "poisson_1d_sin" if n_in == 1 else "poisson_2d_sin"
        return StackedProblem([PoissonProblem(name, 0, b, n_interior=150, n_boundary=40) for b in range(B)])
    fns = list(FUNCTIONS_1D.values())
    if n_in == 1:
        return StackedProblem([RegressionProblem("f", fns[b % len(fns)], 0, b) for b in range(B)])
    fn = lambda x: (3 * x[:, :1]).sin() * x[:, 1:].cos()  # noqa: E731
    return StackedProblem([RegressionProblem("f", fn, 0, b, domain=((0.0, 1.0), (0.0, 1.0))) for b in range(B)])


def perturbed(net, seeds, seed):
    """The init, every used parameter scaled by 1 +- 0.5 (skipped ones stay 0)."""
    X = net.init(seeds)
    g = torch.Generator().manual_seed(seed)
    return X * (1 + 0.5 * torch.randn(X.shape, generator=g))


def used(net, b):
    return net.from_own_row(torch.ones(net.net(b).row_size), b) != 0


def gradient_exception(net, b, through_derivatives):
    _, activation, depth = net.configs[b]
    return through_derivatives and depth == 2 and activation not in nets.WRITTEN_BACKWARD | {"relu"}


@pytest.mark.parametrize("mode", ["regression", "pinn"])
@pytest.mark.parametrize("n_in", [1, 2])
def test_members_are_their_own_stacked_nets(mode, n_in):
    """Loss, forward, gradient and Laplacian in x, the loss's parameter gradient and the metrics of each
    member equal its own StackedNet's on its own row; the columns it does not use get exactly zero gradient."""
    configs = draw(10 * n_in + (mode == "pinn"))
    net = MergedNets(configs, n_in, 5)
    assert net.depth == 6 and net.row_size == nets.StackedNet("mlp", n_in, 5, 6).row_size
    B = len(configs)
    problem = make_problem(mode, n_in, B)
    X = perturbed(net, list(range(B)), n_in)
    x = problem.x["train"]
    Xr = X.clone().requires_grad_(True)
    loss = problem.loss(net, Xr)
    (gX,) = torch.autograd.grad(loss.sum(), Xr)
    f = net.forward(X, x)
    u, g, lap = net.derivatives(X, x)
    assert f.shape == u.shape == lap.shape == (B, x.shape[1], 1) and g.shape == x.shape
    for b in range(B):
        own = net.net(b)
        row = net.to_own_row(X[b], b)[None].requires_grad_(True)
        own_loss = problem.select([b]).loss(own, row)
        (own_g,) = torch.autograd.grad(own_loss.sum(), row)
        assert torch.equal(loss[b], own_loss[0])
        assert torch.equal(f[b], own.forward(row.detach(), x[b:b + 1])[0])
        for merged, alone in zip((u, g, lap), own.derivatives(row.detach(), x[b:b + 1])):
            assert torch.equal(merged[b], alone[0])
        if gradient_exception(net, b, mode == "pinn"):
            assert rel(net.to_own_row(gX[b], b), own_g[0]) < 1e-12
        else:
            assert torch.equal(net.to_own_row(gX[b], b), own_g[0])
        assert (gX[b][~used(net, b)] == 0).all()
    # the recorded metrics (float64, dense grid), of some of the members as the trainer asks for them
    some = torch.arange(1, B, 2)
    for b, metrics in zip(some.tolist(), problem.evaluate(net, X[some], some)):
        assert metrics == problem.select([b]).evaluate(net.net(b), net.to_own_row(X[b], b)[None])[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n_in", [1, 2])
def test_gradients_through_value_gradient_and_laplacian(n_in, dtype):
    """A loss on all three outputs of ``derivatives`` (random weights): each member's parameter gradient is
    its StackedNet's, with both activation-step paths (written backward and autograd), in either dtype."""
    configs = draw(100 + n_in)
    net = MergedNets(configs, n_in, 5)
    B = len(configs)
    gen = torch.Generator().manual_seed(n_in)
    X = perturbed(net, list(range(B)), 5).to(dtype)
    x = torch.rand(B, 130, n_in, generator=gen).to(dtype)
    w = [torch.randn(B, 130, k, generator=gen).to(dtype) for k in (1, n_in, 1)]
    for written in (nets.WRITTEN_BACKWARD, set()):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(nets, "WRITTEN_BACKWARD", written)
            Xr = X.clone().requires_grad_(True)
            (gX,) = torch.autograd.grad(sum((t * c).sum() for t, c in zip(net.derivatives(Xr, x), w)), Xr)
            for b in range(B):
                row = net.to_own_row(X[b], b)[None].requires_grad_(True)
                outs = net.net(b).derivatives(row, x[b:b + 1])
                (own_g,) = torch.autograd.grad(sum((t * c[b:b + 1]).sum() for t, c in zip(outs, w)), row)
                if gradient_exception(net, b, True):
                    assert rel(net.to_own_row(gX[b], b), own_g[0]) < (1e-12 if dtype == torch.float64 else 1e-5)
                else:
                    assert torch.equal(net.to_own_row(gX[b], b), own_g[0])
                assert (gX[b][~used(net, b)] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n_in", [1, 2])
def test_init_rows_modules_and_counts(n_in, dtype):
    """init is StackedNet.init per member (skipped layers 0); a member's row maps to its own row and back;
    module() is the member's own MLP or SIREN; count_params counts what it uses."""
    configs = ALL[::-1]
    net = MergedNets(configs, n_in, 5)
    seeds = [7 * b + 1 for b in range(len(configs))]
    X = net.init(seeds, dtype=dtype)
    assert X.dtype == dtype and X.shape == (len(configs), net.row_size)
    x = torch.rand(len(configs), 50, n_in, dtype=dtype)
    out = net.forward(X, x)
    for b, (family, activation, depth) in enumerate(configs):
        own = net.net(b)
        own_row = own.init([seeds[b]], dtype=dtype)[0]
        assert torch.equal(net.to_own_row(X[b], b), own_row)
        assert torch.equal(net.from_own_row(own_row, b), X[b]) and (X[b][~used(net, b)] == 0).all()
        module = net.module(X[b], b)
        assert isinstance(module, SIREN if family == "siren" else MLP) and module.config["depth"] == depth
        assert family == "siren" or module.config["activation"] == activation
        assert net.count_params()[b] == own.n_params == sum(p.numel() for p in module.parameters())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[b])
            with default_dtype(dtype):
                fresh = own.module()  # built the way a one-model run builds it
        assert all(torch.equal(p, q) for p, q in zip(module.parameters(), fresh.parameters()))
        assert rel(out[b], module(x[b])) < (1e-12 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("mode", ["regression", "pinn"])
def test_a_nan_member_leaves_the_others_alone(mode):
    """A member whose parameters are NaN (its used ones, or its whole row): the others' losses and gradients
    are unchanged, bit for bit, and its unused columns still get exactly zero gradient."""
    configs = draw(7)
    net = MergedNets(configs, 2 if mode == "pinn" else 1, 5)
    B = len(configs)
    problem = make_problem(mode, net.n_in, B)
    X = perturbed(net, list(range(B)), 3)
    k = next(b for b in range(B) if configs[b][2] < 6)

    def loss_and_grad(X):
        Xr = X.clone().requires_grad_(True)
        loss = problem.loss(net, Xr)
        return loss.detach(), torch.autograd.grad(loss.sum(), Xr)[0]

    loss, gX = loss_and_grad(X)
    for bad in (used(net, k), torch.ones(net.row_size, dtype=torch.bool)):
        Xn = X.clone()
        Xn[k, bad] = float("nan")
        nan_loss, nan_g = loss_and_grad(Xn)
        others = torch.arange(B) != k
        assert torch.equal(nan_loss[others], loss[others]) and torch.equal(nan_g[others], gX[others])
        assert nan_loss[k].isnan() and (nan_g[k][~used(net, k)] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n_in", [1, 2])
def test_a_member_does_not_depend_on_its_companions(n_in, dtype):
    """The same member alone, among others in any order, grouped by activation, among depth-2 members only,
    or selected with ``members``: the same forward, derivatives and parameter gradient, bit for bit (in one
    row layout: ``max_depth`` 6 here; the exception above is the same in every composition)."""
    configs = draw(200 + n_in)
    B = len(configs)
    gen = torch.Generator().manual_seed(n_in)
    x = torch.rand(B, 70, n_in, generator=gen).to(dtype)
    w = [torch.randn(B, 70, k, generator=gen).to(dtype) for k in (1, n_in, 1)]
    X = perturbed(MergedNets(configs, n_in, 5), list(range(B)), 9).to(dtype)

    def run(order, members=None):
        """Each member's (forward, u, grad u, Lap u, parameter gradient) in a program of configs[order]."""
        net = MergedNets([configs[b] for b in order], n_in, 5, max_depth=6)
        rows = torch.tensor(order) if members is None else torch.tensor(order)[members]
        idx = None if members is None else torch.tensor(members)
        Xr = X[rows].clone().requires_grad_(True)
        outs = net.derivatives(Xr, x[rows], idx)
        (gX,) = torch.autograd.grad(sum((t * c[rows]).sum() for t, c in zip(outs, w)), Xr)
        f = net.forward(X[rows], x[rows], idx)
        return {b: (f[i], *(t[i] for t in outs), gX[i]) for i, b in enumerate(rows.tolist())}

    everyone = run(list(range(B)))
    grouped = grouped_order(configs)
    assert len(MergedNets([configs[b] for b in grouped], n_in, 5).runs) == len({c[1] for c in configs})
    shallow = [b for b in range(B) if configs[b][2] == 2]
    compositions = [run(grouped), run(list(range(B))[::-1]), run(shallow), run(list(range(B)), list(range(0, B, 3)))]
    compositions += [run([b]) for b in range(B)]
    for c in compositions:
        for b, values in c.items():
            assert all(torch.equal(v, e) for v, e in zip(values, everyone[b]))


def test_grouped_order_and_runs():
    backwards = ALL[::-1]
    net = MergedNets([backwards[b] for b in grouped_order(backwards)], 1, 5)
    assert net.runs == [("tanh", 5), ("relu", 5), ("silu", 5), ("sine", 5)]
    assert [c[2] for c in net.configs[:5]] == [6, 5, 4, 3, 2]  # stable within a block
    with pytest.raises(ValueError):
        MergedNets([("mlp", "tanh", 4)], 1, 5, max_depth=3)


@pytest.mark.parametrize("seed", [0, 1])
def test_own_row_sum_is_torchs_sum_of_each_members_own_row(seed):
    """The optimizer's row sums over merged rows (``own_row_sum``) are torch's sums of the members'
    own rows, bit for bit, where a plain sum of the merged row is not (the reason it exists)."""
    configs = draw(seed)
    net = MergedNets(configs, 1, 5, max_depth=6)
    t = perturbed(net, list(range(len(configs))), seed) * torch.randn(net.row_size, dtype=torch.float64)
    sums = net.own_row_sum("cpu")(t)
    own = torch.stack([net.to_own_row(t[b], b).sum() for b in range(len(configs))])
    assert torch.equal(sums, own)
    assert not torch.equal(t.sum(1), own)
