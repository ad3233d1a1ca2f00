"""Training an ensemble: members of one family and configuration (datasets x seeds) trained as one.

Budget: one epoch is one full-batch step of pykan's optimizer (``lbfgs.BatchedLBFGS``: kan.LBFGS
as fit() configures it, 20 iterations, history 10, strong Wolfe) for every member of every family.
KANs spread the epochs over their grid schedule (``split_budget``), with pykan's grid updates
(every 5 steps during the first 50 of each grid) and ``refine`` between grids; the pruned KAN
first runs a sparsify stage (pykan's fit(lamb=...) objective), is pruned by pykan, and retrains.

Every family trains in the ensemble's precision (``Task.dtype``, float64 by default): its
objective, grid updates and refines see the problem's points and targets in that dtype; the
optimizer's vectors are float64 either way (``lbfgs``), and metrics are computed in float64.

After every step each member's metrics are recorded, so every row holds that epoch's own values;
``wall_time`` is the ensemble's cumulative training time (metrics excluded): what a researcher
pays per configuration; under the resident engine (the GPU's), where members step on their own,
the ticks a member's own steps took times its program's time per tick. A member whose loss turns non-finite is recorded as NaN and stops; the
others go on. A step that raises stops the members it was training, with a one-line note.
"""
from __future__ import annotations

import math
import sys
import time

import torch

from utils.config import GRID_UPDATE_EVERY, GRID_UPDATE_UNTIL, LBFGS_OPTIONS, PRUNE_REG
from utils.device import synchronize
from utils.engine import kan_numba
from utils.engine.kan_stack import StackedKAN
from utils.engine.nets import StackedNet
from utils.families import FAMILIES
from utils.models.kan import make_kan, prune, pykan_like
from utils.models.saving import model_spec
from utils.optim.lbfgs import BatchedLBFGS
from utils.problems.stacked import StackedProblem, failed_metrics


def split_budget(epochs: int, n_stages: int) -> list[int]:
    """Steps per stage: equal shares, the last stage gets the remainder.

    With fewer epochs than stages only the first ``epochs`` stages run, one step each.
    """
    if epochs < n_stages:
        return [1] * epochs
    share = epochs // n_stages
    return [share] * (n_stages - 1) + [epochs - share * (n_stages - 1)]


class Members:
    """The rows of an ensemble's members: one per member per epoch, and which members still train."""

    def __init__(self, base_rows):
        self.base = base_rows
        self.rows = [[] for _ in base_rows]
        self.wall = [0.0] * len(base_rows)

    def record(self, members, seconds, metrics, params, **columns):
        """Append the epoch just trained of each listed member; returns those that may go on.

        ``seconds``: the epoch's training time, the same for every member (they stepped in lockstep),
        or one per member (the resident engine's members step on their own)."""
        going = []
        per_member = seconds if isinstance(seconds, (list, tuple)) else [seconds] * len(members)
        for b, m, n, sec in zip(members, metrics, params, per_member):
            self.wall[b] += sec
            self.rows[b].append({**self.base[b], "epoch": len(self.rows[b]) + 1, **m, "wall_time": self.wall[b],
                                 "num_params": n, **columns})
            if math.isfinite(m["train_loss"]):
                going.append(b)
        return going


def autograd_objective(problem, model, dtype, extra=None):
    """Losses and gradients of the members by autograd through the stacked model (any device), in ``dtype``."""
    problem = problem.cast(dtype)

    def fun(X, idx):
        Xr = X.to(dtype).requires_grad_(True)
        with torch.enable_grad():
            loss = problem.loss(model, Xr, idx)
            if extra is not None:
                loss = loss + extra(Xr, idx)
            (G,) = torch.autograd.grad(loss.sum(), Xr)
        return loss.detach(), G
    return fun


def run_stage(problem, model, X, steps, log: Members, members, ids, make_objective, dtype, device,
              before_step=None, params=None, engine="host", barrier=None, row_sum=None, **columns):
    """``steps`` optimizer steps of the listed members (indices into this stage's rows of X; ``ids`` maps
    them to the ensemble's members). Returns (X, members still training).

    ``params(members)`` gives their parameter counts (default: the model's, the same for all).
    ``make_objective()`` is called after ``before_step(step, members)``, which may change the model
    and X (grid updates) and returns X (a new tensor if it changed anything); the optimizer's
    curvature history carries over, as in pykan's fit(). ``barrier(step)`` says at which steps
    ``before_step`` changes anything (the resident engine's members only wait for each other there).
    ``engine``: "host" (``BatchedLBFGS``) or "resident" (``run_stage_resident``, with the optimizer's
    ``row_sum``).
    """
    if engine == "resident":
        return run_stage_resident(problem, model, X, steps, log, members, ids, make_objective, dtype, device,
                                  before_step, params, barrier, row_sum, **columns)
    opt = BatchedLBFGS(X.shape[0], X.shape[1], device=device, **LBFGS_OPTIONS)
    X = X.to(torch.float64)
    counts = params or (lambda members: [model.count_params()] * len(members))
    for s in range(steps):
        if not members:
            break
        idx = torch.tensor(members, device=device)
        t0 = time.perf_counter()
        try:
            X = _before_step(before_step, s, idx, X, opt)
            X = opt.step(make_objective(), X, members)
            synchronize(device)
            seconds = time.perf_counter() - t0
            metrics = problem.evaluate(model, X[idx].to(dtype), idx)  # the parameters the model holds
        except (RuntimeError, ValueError, torch.linalg.LinAlgError) as e:
            _record_failure(e, problem, log, [ids[b] for b in members], time.perf_counter() - t0, counts(members),
                            columns)
            return X, []
        going = set(log.record([ids[b] for b in members], seconds, metrics, counts(members), **columns))
        members = [b for b in members if ids[b] in going]
    return X, members


def _before_step(before_step, step, idx, X, opt):
    """X after ``before_step`` (a grid update may change the model with X); an optimizer whose model
    changed forgets its old gradients, as pykan's fit() starts afresh after update_grid."""
    if before_step is None:
        return X
    changed = before_step(step, idx, X)
    if changed is not X:
        opt.forget()
    return changed


def _record_failure(e, problem, log, names, seconds, params, columns):
    """A failed least-squares fit or a non-finite grid is a result, not a crash: one line on stderr,
    and a failed row for every member still training."""
    print(f"training stopped at a failed step: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr)
    log.record(names, seconds, [failed_metrics(problem)] * len(names), params, **columns)


def _segments(steps, barrier):
    """[start, end) step ranges between barriers (a barrier step starts a segment)."""
    cuts = [s for s in range(1, steps) if barrier is not None and barrier(s)]
    bounds = [0, *cuts, steps]
    return list(zip(bounds[:-1], bounds[1:]))


def run_stage_resident(problem, model, X, steps, log: Members, members, ids, make_objective, dtype, device,
                       before_step=None, params=None, barrier=None, row_sum=None, **columns):
    """``run_stage`` with the device-resident optimizer (``utils.optim.resident``): the same steps, the
    same rows, computed as a GPU wants them.

    Between barriers (KAN grid updates) every member takes its own steps without waiting for the
    others, each tick evaluating every row (``ticks.run``: on a GPU replayed as a CUDA graph); the
    metrics come afterwards from the per-step snapshots, with the grids in force during those steps.
    A member whose loss turns non-finite keeps computing NaN rows to the barrier (no row mixes with
    another), its rows after that epoch are dropped, and its parameters are those of that epoch, as
    in ``run_stage``. ``wall_time``: a member's epoch ends at the tick its step ended, timed by the
    program's clock (the time per tick of its segment), so a member pays for the ticks it used, not
    for its companions' longer steps.
    """
    from utils.engine import ticks
    from utils.optim.resident import ResidentLBFGS
    B = X.shape[0]
    opt = ResidentLBFGS(B, X.shape[1], device=device, max_steps=max(1, steps), row_sum=row_sum, **LBFGS_OPTIONS)
    X = X.to(torch.float64)
    counts = params or (lambda members: [model.count_params()] * len(members))
    for first, end in _segments(steps, barrier):
        if not members:
            break
        idx = torch.tensor(members, device=device)
        t0 = time.perf_counter()
        try:
            X = _before_step(before_step, first, idx, X, opt)
            objective = make_objective()
            target = torch.zeros(B, dtype=torch.long)
            target[members] = end - first
            tick_seconds = ticks.run(opt, lambda Xall: objective(Xall, None), X, target, device)
            # the grids in force during these steps: metrics before the next barrier changes them
            snaps, snap_ticks = opt.snap_x[:end - first].clone(), opt.snap_tick[:end - first].cpu()
            setup = time.perf_counter() - t0 - tick_seconds * int(opt.ticks)
        except (RuntimeError, ValueError, torch.linalg.LinAlgError) as e:
            _record_failure(e, problem, log, [ids[b] for b in members], time.perf_counter() - t0, counts(members),
                            columns)
            return X, []
        ended = torch.zeros(B, dtype=torch.long)   # the tick each member's previous step ended at
        for k in range(end - first):
            idx = torch.tensor(members, device=device)
            metrics = problem.evaluate(model, snaps[k][idx].to(dtype), idx)
            seconds = [setup * (k == 0) + tick_seconds * int(snap_ticks[k, b] - ended[b]) for b in members]
            ended[members] = snap_ticks[k, members]
            for b in members:
                X[b] = snaps[k, b]
            going = set(log.record([ids[b] for b in members], seconds, metrics, counts(members), **columns))
            members = [b for b in members if ids[b] in going]
    return X, members


# ----------------------------------------------------------------------------- MLP and SIREN

def train_nets(ens, problems, base_rows, config):
    """MLP / SIREN members: ``epochs`` LBFGS steps; the trained modules are the saved models.

    Every trainer returns each member's rows and snapshots, a list of (key fields, model spec).
    """
    problem = StackedProblem(problems)
    device, dtype = ens.device, getattr(torch, ens.dtype)
    activation = config.get("activation", FAMILIES[ens.family].activation)
    net = StackedNet(ens.family, problem.n_in, config["width"], config["depth"], activation)
    X = net.init([t.seed for t in ens.tasks], device=device, dtype=dtype)
    log = Members(base_rows)
    members = list(range(len(problems)))
    objective = autograd_objective(problem, net, dtype)
    X, _ = run_stage(problem, net, X, ens.epochs, log, members, members, lambda: objective, dtype, device,
                     engine=ens.engine)
    return log.rows, [[({}, model_spec(net.module(X[b].to(dtype).cpu())))] for b in members]


def merge_key(ens):
    """Ensembles with one key train as one ``train_merged_nets`` program (None: on their own).

    Only the resident engine on a GPU merges: there one launch sequence for a section's 180 net
    members beats 20 ensembles one after another, while on a CPU the merged layout costs 2-3x
    (``utils.engine.merged_nets``), so the CPU trains one StackedNet per configuration."""
    if FAMILIES[ens.family].trainer != "train_nets" or ens.engine != "resident" or ens.device not in MERGED_DEVICES:
        return None
    return ens.section, ens.epochs, ens.device, ens.dtype, ens.options, dict(ens.config)["width"]


MERGED_DEVICES = ("cuda",)   # where merge_key merges (a test adds "cpu")


def merged_program(ensembles, problems):
    """(slots, problem, net, X) of ``train_merged_nets``: member (i, k), task k of ensemble i, is row j
    of slots, the rows grouped by activation; X the members' initial parameters."""
    from utils.config import MLP_DEPTHS, SIREN_DEPTHS
    from utils.engine.merged_nets import MergedNets, grouped_order
    first = ensembles[0]
    slots = [(i, k) for i, e in enumerate(ensembles) for k in range(len(e.tasks))]
    configs = [(ensembles[i].family, dict(ensembles[i].config).get("activation", FAMILIES[ensembles[i].family].activation),
                dict(ensembles[i].config)["depth"]) for i, _ in slots]
    order = grouped_order(configs)
    slots, configs = [slots[j] for j in order], [configs[j] for j in order]
    problem = StackedProblem([problems[i][k] for i, k in slots])
    net = MergedNets(configs, problem.n_in, dict(first.config)["width"], max_depth=max(*MLP_DEPTHS, *SIREN_DEPTHS))
    X = net.init([ensembles[i].tasks[k].seed for i, k in slots], device=first.device, dtype=getattr(torch, first.dtype))
    return slots, problem, net, X


def train_merged_nets(ensembles, problems, base_rows):
    """MLP and SIREN ensembles of one ``merge_key`` as one program: every member a row of one
    ``MergedNets`` (layout depth: the deepest net a sweep has, so a member's numbers never depend on
    which configurations it trains with), rows grouped by activation. Returns each ensemble's
    (rows, snapshots) as ``train_nets`` does. ``wall_time``: each member's own ticks (its program's
    time per tick x the ticks its steps took), as for every resident ensemble."""
    first = ensembles[0]
    device, dtype = first.device, getattr(torch, first.dtype)
    slots, problem, net, X = merged_program(ensembles, problems)
    log = Members([base_rows[i][k] for i, k in slots])
    rows = list(range(len(slots)))
    counts = net.count_params()
    objective = autograd_objective(problem, net, dtype)
    X, _ = run_stage(problem, net, X, first.epochs, log, rows, rows, lambda: objective, dtype, device,
                     params=lambda ms: [counts[b] for b in ms], engine="resident", row_sum=net.own_row_sum(device))
    out = [([None] * len(e.tasks), [None] * len(e.tasks)) for e in ensembles]
    for j, (i, k) in enumerate(slots):
        out[i][0][k] = log.rows[j]
        out[i][1][k] = [({}, model_spec(net.module(X[j].to(dtype).cpu(), j)))]
    return out


# ----------------------------------------------------------------------------- KANs

class KanStage:
    """The grid schedule of KAN members: train at each grid, refine to the next (pykan's protocol)."""

    def __init__(self, problem, stacked, X, kans, log, ids, device, dtype, family_columns, engine="host"):
        self.problem, self.stacked, self.X, self.kans = problem, stacked, X, kans
        self.log, self.ids, self.device, self.dtype = log, ids, device, dtype
        self.columns, self.engine = family_columns, engine

    def data(self, idx):
        """The training inputs in the training precision (grid updates, refines, the regularizer)."""
        x = self.problem.cast(self.dtype).train_x
        return x if idx is None else x[idx]

    def objective_factory(self, extra=None):
        """The compiled regression objective on the CPU in float64 (rebuilt after grid updates), autograd
        otherwise (the compiled loop is float64 only)."""
        stacked, problem = self.stacked, self.problem
        if (extra is None and not problem.is_pde and torch.device(self.device).type == "cpu"
                and self.dtype == torch.float64 and kan_numba.supports(stacked)):
            cache = {}

            def make():
                if cache.get("version") != self.grid_version:
                    cache.update(version=self.grid_version, fun=kan_numba.StackedMSE(
                        stacked, problem.x["train"], problem.y["train"]))
                return cache["fun"]
            return make
        fun = autograd_objective(problem, stacked, self.dtype, extra)
        return lambda: fun

    grid_version = 0

    @staticmethod
    def updates_grid(s) -> bool:
        """Whether pykan's fit() updates the grid before step s of a grid (every 5 steps, first 50)."""
        return s % GRID_UPDATE_EVERY == 0 and s < GRID_UPDATE_UNTIL

    def grid_updates(self, s, idx, X):
        """pykan fit()'s update_grid calls, as a run_stage ``before_step``."""
        if self.updates_grid(s):
            X = self.stacked.update_grid(X.to(self.dtype), self.data(idx), idx).to(torch.float64)
            self.grid_version += 1
        return X

    def counts(self, members):
        all_counts = self.stacked.count_params()
        return [all_counts[b] for b in members]

    def train(self, steps, members, extra=None, **columns):
        self.X, members = run_stage(self.problem, self.stacked, self.X, steps, self.log, members, self.ids,
                                    self.objective_factory(extra), self.dtype, self.device, self.grid_updates,
                                    self.counts, self.engine, self.updates_grid, grid_size=self.stacked.grid_size,
                                    **self.columns, **columns)
        return members

    def refine(self, grid, members):
        idx = torch.tensor(members, device=self.device)
        self.stacked, X = self.stacked.refine(self.X.to(self.dtype), self.data(idx), grid, idx)
        self.X = X.to(torch.float64)
        self.grid_version += 1
        self.kans = [pykan_like(m, grid) for m in self.kans]

    def snapshot(self, members, stage):
        """pykan models of the listed members at the end of a stage: {member: (key fields, spec)}."""
        out = {}
        for b in members:
            model = self.stacked.to_pykan(self.X.to(self.dtype), b, self.kans[b])
            out[b] = ({"stage": stage, "grid_size": self.stacked.grid_size}, model_spec(model))
        return out

    def schedule(self, stage_steps, grids, members, stage_name, saved, **columns):
        """Train at grids[0], refine to grids[1], train, ...; snapshots of every stage into ``saved``."""
        for i, steps in enumerate(stage_steps):
            if not members:
                break
            if i > 0:
                self.refine(grids[i], members)
            trained = members
            members = self.train(steps, members, **columns)
            for b, snap in self.snapshot(trained, stage_name).items():
                saved[self.ids[b]].append(snap)
        return members


def _new_kans(tasks, n_in, width, grid, device, dtype):
    """pykan KANs [n_in, width, 1]; ``width`` may also be a whole width list, e.g. [2, 1, 1]."""
    widths = list(width) if isinstance(width, (list, tuple)) else [n_in, width, 1]
    return [make_kan(widths, grid, seed=t.seed, device=device, dtype=dtype) for t in tasks]


def _kan_ensemble(ens, problems, base_rows, config):
    """What both KAN trainers start from: the members' pykan KANs at the first grid, stacked."""
    problem = StackedProblem(problems)
    device, dtype = ens.device, getattr(torch, ens.dtype)
    kans = _new_kans(ens.tasks, problem.n_in, config["width"], ens.grids[0], device, dtype)
    stacked, X = StackedKAN.from_pykan(kans)
    members = list(range(len(problems)))
    run = KanStage(problem, stacked, X, kans, Members(base_rows), members, device, dtype, {}, ens.engine)
    return run, members, [[] for _ in problems]


def train_kans(ens, problems, base_rows, config):
    """KAN [n_in, width, 1] members; grid extension through ``ens.grids``, training continuing at each grid."""
    run, members, saved = _kan_ensemble(ens, problems, base_rows, config)
    run.schedule(split_budget(ens.epochs, len(ens.grids)), ens.grids, members, "kan", saved)
    return run.log.rows, saved


def train_kans_pruned(ens, problems, base_rows, config):
    """The KAN paper's protocol: sparsify, prune, retrain the pruned nets with grid extension.

    The sparsify stage's objective is exactly pykan's ``fit(lamb=...)``: the raw loss plus lamb times
    pykan's regularizer (l1 + entropy of the edges' activation scales) on the training inputs. It is
    one stage of the budget; pykan's ``prune(node_th, edge_th)`` then prunes each member, and members
    whose pruned widths agree retrain together through the grid schedule.
    """
    run, members, saved = _kan_ensemble(ens, problems, base_rows, config)
    problem, stacked, kans, log, device, dtype = run.problem, run.stacked, run.kans, run.log, run.device, run.dtype
    stages = split_budget(ens.epochs, len(ens.grids) + 1)
    lamb = config["prune_lamb"]
    regularizer = lambda Xr, idx: lamb * stacked.regularizer(Xr, run.data(idx), idx, PRUNE_REG)  # noqa: E731
    trained = members
    members = run.train(stages[0], members, extra=regularizer, stage="sparsify", is_pruned=False)
    for b, snap in run.snapshot(trained, "sparsify").items():
        saved[b].append(snap)
    if len(stages) == 1 or not members:
        return log.rows, saved
    pruned = {}
    for b in members:
        model = stacked.to_pykan(run.X.to(dtype), b, kans[b])
        try:
            pruned[b] = prune(model, run.data(None)[b], config["prune_node_th"], config["prune_edge_th"])
        except (RuntimeError, ValueError, IndexError) as e:
            print(f"pruning failed: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr)
            log.record([b], 0.0, [failed_metrics(problem)], [0], grid_size=stacked.grid_size, stage="retrain",
                       is_pruned=True)
    # members whose pruned networks have one shape retrain as one ensemble
    groups = {}
    for b, model in pruned.items():
        groups.setdefault(tuple(w[0] if isinstance(w, list) else w for w in model.width), []).append(b)
    for shape, group in groups.items():
        sub = problem.select(group)
        stacked_g, X_g = StackedKAN.from_pykan([pruned[b] for b in group])
        run_g = KanStage(sub, stacked_g, X_g, [pruned[b] for b in group], log, group, device, dtype, {}, ens.engine)
        run_g.schedule(stages[1:], ens.grids, list(range(len(group))), "retrain", saved, stage="retrain",
                       is_pruned=True)
    return log.rows, saved
