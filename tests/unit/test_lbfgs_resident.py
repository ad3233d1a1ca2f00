"""The device-resident optimizer takes BatchedLBFGS's steps bit for bit, and its tick never asks the host.

The oracle is ``BatchedLBFGS`` with its compiled directions, the engine the pipeline runs on a CPU,
whose arithmetic the resident engine follows, in float64 on the CPU: same iterates after every step, the same trial
points in the same order per member (the resident engine's discarded rows not counted), the same
evaluation counts, the same loss at each step's start. Through it what tests/test_lbfgs.py proves
carries over: kan.LBFGS's iterates to rounding, NaN members disturbing nobody, the step-start
evaluation reused. A tick's operations are traced: the same ones whatever the members' state, and
none that reads a value on the host.
"""
import random
import zlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from test_lbfgs import PYKAN_FIT, counting, mlp_fit, mlp_target, reference, rosenbrock, teacher_student
from utils.config import LBFGS_OPTIONS
from utils.optim.lbfgs import BatchedLBFGS
from utils.optim.resident import BRACKET, FRESH, IDLE, ZOOM, ResidentLBFGS

pytestmark = pytest.mark.usefixtures("float64")


def loss_and_grad(f, row):
    row = row.detach().clone().requires_grad_(True)
    loss = f(row)
    (g,) = torch.autograd.grad(loss, row)
    return loss.detach(), g


def bits(x):
    """x's bits, for an equality that also holds between NaNs (and tells -0.0 from 0.0)."""
    return x.contiguous().view(torch.int64)


class Both:
    """The oracle and the resident engine on the same members; each records its trial points per member."""

    def __init__(self, fs, n_params, max_steps, dtype=torch.float64, **options):
        self.fs, self.dtype, B = fs, dtype, len(fs)
        self.oracle = BatchedLBFGS(B, n_params, compiled=True, **options)
        self.resident = ResidentLBFGS(B, n_params, max_steps=max_steps, **options)
        self.oracle_points, self.resident_points = [[] for _ in fs], [[] for _ in fs]
        # one object each: both engines evaluate afresh when called with another objective than last time
        self.oracle_fun, self.resident_fun = self._oracle_fun, self._resident_fun

    def _oracle_fun(self, X, idx):
        out = [loss_and_grad(self.fs[b], row.to(self.dtype)) for row, b in zip(X, idx.tolist())]
        for row, b in zip(X, idx.tolist()):
            self.oracle_points[b].append(row.clone())
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def _resident_fun(self, X):
        out = [loss_and_grad(f, row.to(self.dtype)) for f, row in zip(self.fs, X)]
        for b, live in enumerate(self.resident.live.tolist()):
            if live:
                self.resident_points[b].append(X[b].clone())
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def run(self, x0, schedule, check_every=7):
        """Runs ``schedule`` (step counts, and "forget") on both from x0 and asserts they agree bit for bit."""
        x_oracle, x_resident = x0.clone(), x0.clone()
        for item in schedule:
            if item == "forget":
                self.oracle.forget()
                self.resident.forget()
                continue
            start_losses, oracle_x, oracle_counts = [], [], []
            for _ in range(item):
                start_losses.append(torch.stack([loss_and_grad(f, row.to(self.dtype))[0].double()
                                                 for f, row in zip(self.fs, x_oracle)]))
                x_oracle = self.oracle.step(self.oracle_fun, x_oracle)
                oracle_x.append(x_oracle)
                oracle_counts.append([len(p) for p in self.oracle_points])
            x_resident = self.resident.run(self.resident_fun, x_resident, item, check_every=check_every)
            r = self.resident
            for k in range(item):
                assert torch.equal(bits(r.snap_x[k]), bits(oracle_x[k])), f"x after step {k}"
                assert torch.equal(bits(r.snap_loss[k]), bits(start_losses[k])), f"loss at step {k}'s start"
                assert r.snap_evals[k].tolist() == oracle_counts[k], f"evaluations until step {k}'s end"
            assert torch.equal(bits(x_resident), bits(x_oracle))
            assert (r.steps_done == item).all() and (r.phase == IDLE).all()
        counts = [len(p) for p in self.oracle_points]
        assert [len(p) for p in self.resident_points] == counts == self.resident.n_evals.tolist()
        for b, (mine, theirs) in enumerate(zip(self.resident_points, self.oracle_points)):
            assert all(torch.equal(bits(p), bits(q)) for p, q in zip(mine, theirs)), f"member {b}'s trial points"
        return x_oracle


def follow(fs, x0, schedule, check_every=7, dtype=torch.float64, **options):
    """Both engines through ``schedule`` from x0, members ``fs`` evaluated in ``dtype``; the oracle's x."""
    options = {**LBFGS_OPTIONS, **options}
    steps = max(s for s in schedule if s != "forget")
    return Both(fs, x0.shape[1], steps, dtype, **options).run(x0, schedule, check_every)


# ---------------------------------------------------------------------- the problems of test_lbfgs.py

@pytest.mark.parametrize("f, n, steps", [(rosenbrock, 12, 4), (mlp_fit, 320, 4)], ids=["rosenbrock", "mlp"])
def test_pykan_problems_bit_equal(f, n, steps):
    torch.manual_seed(0)
    x0 = torch.randn(1, n) * 0.5
    x = follow([f], x0, [steps])
    assert f(x[0]) < 0.5 * f(x0[0])


def test_low_loss_regime_bit_equal():
    """Teacher-student below an MSE of 1e-10, where only tolerance_ys=1e-32 keeps learning."""
    f, x0 = teacher_student()
    x = follow([f], x0[None], [3])
    assert f(x[0]) < 1e-10


def test_members_of_different_problems_and_a_nan_member():
    """test_lbfgs.py's five members (P = 320; one diverges to NaN), and a forget() between runs."""
    g = torch.Generator().manual_seed(3)
    fs = [mlp_target(2), mlp_target(6), lambda x: rosenbrock(x[:12]) + x[12:].pow(2).sum(), teacher_student()[0],
          lambda x: mlp_fit(x) * torch.where(x[0] == 9.0, 1.0, float("nan"))]
    x0 = torch.randn(5, 320, generator=g) * 0.5
    x0[3] = teacher_student()[1]
    x0[4, 0] = 9.0
    x = follow(fs, x0, [1, "forget", 1])
    assert x[4].isnan().any() and not x[:4].isnan().any()


def test_live_evaluations_are_kan_lbfgs_func_evals_less_the_reused_ones():
    """kan.LBFGS evaluates at the start of every step what its last line search evaluated there."""
    torch.manual_seed(0)
    x0, steps, theirs = torch.randn(320) * 0.5, 4, []
    reference(counting(mlp_fit, theirs), x0, steps, **PYKAN_FIT)
    opt = ResidentLBFGS(1, 320, max_steps=steps, **LBFGS_OPTIONS)
    opt.run(lambda X: [t[None] for t in loss_and_grad(mlp_fit, X[0])], x0[None], steps)
    assert opt.n_evals.item() == len(theirs) - (steps - 1) and len(theirs) > 4 * steps
    assert opt.snap_evals[:steps, 0].tolist()[-1] == opt.n_evals.item()


# ---------------------------------------------------------------------- randomized members and settings

T8 = torch.linspace(-1, 1, 8, dtype=torch.float64)


def tanh_fit(n):
    """A one-hidden-layer tanh fit of sin(3t) on 8 points, n units (the first 2n parameters)."""
    return lambda x: ((x[:n, None] * torch.tanh(x[n:2 * n, None] * T8)).sum(0) - torch.sin(3 * T8)).pow(2).mean()


def random_member(rng, P):
    """An objective and a start: a few kinds of landscape, some starting at a stationary point."""
    kind = rng.choice(["quadratic", "rosenbrock", "tanh fit", "tanh fit", "almost linear", "tiny slope"])
    gen = torch.Generator().manual_seed(rng.randrange(10 ** 6))
    x0 = torch.randn(P, generator=gen) * rng.choice([0.3, 1.0, 3.0])
    if kind == "quadratic":
        M = torch.randn(P, P, generator=gen)
        A, c = M @ M.T + 0.1 * torch.eye(P), torch.randn(P, generator=gen)
        f = lambda x: 0.5 * (x - c) @ A @ (x - c)  # noqa: E731
        if rng.random() < 0.3:
            x0 = c.clone()                          # gradient exactly 0
    elif kind == "rosenbrock":
        f = rosenbrock
        if rng.random() < 0.3:
            x0 = torch.ones(P)                      # gradient exactly 0
    elif kind == "tanh fit":
        f = tanh_fit(P // 2)
    elif kind == "almost linear":                   # line searches extrapolate a dozen times
        w = torch.randn(P, generator=gen)           # (exactly linear: BatchedLBFGS's cubic divides 0 by 0)
        f = lambda x: w @ x + 1e-12 * (w @ x) ** 2  # noqa: E731
    else:                                           # g.d > -tolerance_change: the step ends before a line search
        f = lambda x: 1e-20 * x.sum()  # noqa: E731
    if rng.random() < 0.3:                          # NaN at some points (a function of the point's bits)
        rate = rng.choice([3, 7, 20])
        f = nan_at_some_points(f, rate)
    return f, x0


def nan_at_some_points(f, rate):
    def g(x):
        nan = zlib.crc32(x.detach().numpy().tobytes()) % rate == 0
        return f(x) * (float("nan") if nan else 1.0)
    return g


SETTINGS = dict(max_iter=[1, 2, 3, 20, 20, 20], max_ls=[0, 1, 2, 25, 25, 25], history_size=[1, 2, 10],
                tolerance_change=[1e-32, 1e-32, 1e-9, 1e-3], tolerance_grad=[1e-32, 1e-7, 1e-2],
                tolerance_ys=[1e-32, 1e-10], lr=[1.0, 1.0, 0.3])


@pytest.mark.parametrize("seed", range(48))
def test_random_members_and_settings_bit_equal(seed):
    rng = random.Random(seed)
    B, P = rng.choice([1, 2, 3, 5, 8, 12]), rng.randrange(2, 9)
    options = {k: rng.choice(v) for k, v in SETTINGS.items()}
    members = [random_member(rng, P) for _ in range(B)]
    schedule = rng.choice([[3], [2, 1], [1, "forget", 2], [2, "forget", 1, 1]])
    follow([f for f, _ in members], torch.stack([x for _, x in members]), schedule,
           check_every=rng.choice([1, 4, 20]), **options)


def test_float32_objective_bit_equal():
    """An objective evaluated in float32: both engines compute in float64 from its float32 results."""
    fs = [rosenbrock, lambda x: (x - 1).pow(4).sum() + x.prod(), nan_at_some_points(rosenbrock, 5)]
    x0 = torch.randn(3, 6, generator=torch.Generator().manual_seed(4))
    x = follow(fs, x0, [2], dtype=torch.float32)
    assert rosenbrock(x[0]) < rosenbrock(x0[0])


def test_members_run_their_own_number_of_steps():
    """Per-member targets: each member's snapshots are its first steps; a finished member waits, unchanged."""
    rng = random.Random(5)
    members = [random_member(rng, 6) for _ in range(4)]
    fs, x0 = [f for f, _ in members], torch.stack([x for _, x in members])
    both = Both(fs, 6, 3, **LBFGS_OPTIONS)
    x, oracle_x = x0, []
    for _ in range(3):
        x = both.oracle.step(both.oracle_fun, x)
        oracle_x.append(x)
    target = torch.tensor([3, 1, 0, 2])
    r = both.resident
    final = r.run(both.resident_fun, x0, target)
    for b, n in enumerate(target.tolist()):
        for k in range(n):
            assert torch.equal(bits(r.snap_x[k, b]), bits(oracle_x[k][b]))
        assert r.snap_x[n:, b].isnan().all()
        assert torch.equal(bits(final[b]), bits(oracle_x[n - 1][b] if n else x0[b]))
        assert len(both.resident_points[b]) == (r.snap_evals[n - 1, b].item() if n else 0)


def test_libm_pow_is_pythons_float_power():
    """The cubic's squares and roots are Python's (libm's pow), which x * x and torch.sqrt are not always."""
    rng = random.Random(0)
    xs = [rng.random() * 2.0 ** rng.randrange(-60, 60) for _ in range(20000)]
    opt = ResidentLBFGS(len(xs), 1, history_size=1, max_ls=1)
    x = torch.tensor(xs)
    for exponent, other in ((2, x * x), (0.5, x.sqrt())):
        theirs = torch.tensor([v ** exponent for v in xs])
        assert torch.equal(opt._pow(x, exponent), theirs)
        assert not torch.equal(other, theirs)   # the test can tell


# ---------------------------------------------------------------------- a tick never asks the host

def describe(a):
    if isinstance(a, torch.Tensor):
        return (tuple(a.shape), a.dtype, str(a.device))
    if isinstance(a, (list, tuple)):
        return tuple(describe(v) for v in a)
    return repr(a)


class Trace(TorchDispatchMode):
    """The aten operations of the engine (not of the objective): name, tensor shapes, dtypes and
    devices, other arguments by value."""

    def __init__(self):
        super().__init__()
        self.ops, self.in_objective = [], False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.in_objective:
            self.ops.append((str(func), describe(args), describe(sorted(kwargs.items()))))
        return func(*args, **kwargs)

    def objective(self, fun):
        def f(X):
            self.in_objective = True
            try:
                return fun(X)
            finally:
                self.in_objective = False
        return f


HOST_READS = ("aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.nonzero", "aten.masked_select",
              "aten.lift_fresh")   # lift_fresh: torch.tensor / as_tensor / from_numpy of Python or NumPy data


def host_dependent(ops):
    """The operations that read values on the host, make shapes from data, or bring data from the host."""
    bad = []
    for name, args, kwargs in ops:
        tensors = [a for a in args if isinstance(a, tuple) and len(a) == 3 and isinstance(a[1], torch.dtype)]
        indices = [i for a in args[1:2] if isinstance(a, tuple) for i in a if isinstance(i, tuple)]
        if name.startswith(HOST_READS):
            bad.append(name)
        elif name.startswith(("aten.index.", "aten.index_put")) and any(i[1] == torch.bool for i in indices):
            bad.append(name + " (boolean mask)")
        elif name.startswith(("aten._to_copy", "aten.copy_")) and (
                len({t[2] for t in tensors}) > 1 or any(k == "device" and v != repr(torch.device(tensors[0][2]))
                                                         for k, v in kwargs)):
            bad.append(name + " (between devices)")
    return bad


@pytest.fixture
def no_python_reads(monkeypatch):
    """tolist() and numpy() read a CPU tensor without dispatching anything: make them fail."""
    def refuse(*args, **kwargs):
        raise AssertionError("a tensor read on the host")
    for name in ("tolist", "numpy", "__array__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


def traced_ticks(opt, fun, n):
    trace = Trace()
    per_tick = []
    with trace:
        for _ in range(n):
            start = len(trace.ops)
            opt.tick(trace.objective(fun))
            per_tick.append(trace.ops[start:])
    return per_tick


def test_the_checks_catch_host_reads(no_python_reads):
    """The trace test below would see each way of asking the host."""
    x = torch.randn(4)
    for bad in (lambda: x.sum().item(), lambda: bool(x[0] > 0), lambda: float(x[1]), lambda: x[x > 0],
                lambda: x.clone().__setitem__(x > 0, x[0]), lambda: x.nonzero(), lambda: torch.tensor([1.0, 2.0]),
                lambda: torch.as_tensor([1, 2])):
        trace = Trace()
        with trace:
            bad()
        assert host_dependent(trace.ops), bad
    with pytest.raises(AssertionError):
        x.tolist()


def test_a_tick_is_the_same_operations_whatever_the_state(no_python_reads):
    """K ticks from two unlike states: the same aten operations (names, shapes, dtypes, scalars) tick
    after tick, and none that reads the host: capturable as one CUDA graph, replayed K times."""
    g = torch.Generator().manual_seed(11)
    fs = [lambda x: rosenbrock(x) * torch.where(x[0] == x[0], float("nan"), 1.0),   # NaN everywhere
          rosenbrock, lambda x: 1e-20 * x.sum(), lambda x: x.pow(2).sum() + x.prod(), tanh_fit(2),
          lambda x: (x - 1).pow(4).sum()]
    x0 = torch.randn(6, 5, generator=g)

    def fun(X):
        out = [loss_and_grad(f, row) for f, row in zip(fs, X)]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def spread(opt):   # members bracketing, zooming, waiting and starting afresh (a NaN x does)
        return all(bool((opt.phase == p).any()) for p in (BRACKET, ZOOM, IDLE, FRESH)) and bool(opt.x.isnan().any())

    ticks = []
    for warm in (False, True):
        opt = ResidentLBFGS(6, 5, max_steps=3, history_size=3, **{k: v for k, v in LBFGS_OPTIONS.items()
                                                                    if k != "history_size"})
        opt.start(x0, torch.tensor([3, 3, 1, 3, 2, 3]))
        for _ in range(200 if warm else 0):
            if spread(opt):
                break
            opt.tick(fun)
        assert spread(opt) == warm
        ticks += traced_ticks(opt, fun, 4)
    assert all(t == ticks[0] for t in ticks)
    assert host_dependent(ticks[0]) == []
