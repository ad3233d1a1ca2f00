"""Training: one optimizer loop for every family, the KAN grid schedule, the pruning protocol.

Budget: one epoch is one full-batch step of the optimizer, and every family gets the same
optimizer, pykan's own choice for KANs: LBFGS with 20 iterations per step, history 10 and a
strong-Wolfe line search (``utils.lbfgs``: torch's algorithm over one flat parameter vector).
KANs spread the epochs over their grid schedule (``split_budget``).
After every step the problem's metrics are recorded, so every row holds that epoch's own values.
A step that produces a non-finite loss or raises is recorded as NaN and ends that model's
training; the sweep goes on.
"""
from __future__ import annotations

import math
import sys
import time

import torch

from utils import kan_fast, kan_numba
from utils.config import (GRID_UPDATE_EVERY, GRID_UPDATE_UNTIL, KAN_GRIDS, KAN_WIDTH, LBFGS_OPTIONS, PRUNE_EDGE_TH,
                          PRUNE_LAMB, PRUNE_NODE_TH, PRUNE_REG)
from utils.lbfgs import LBFGS, ParamVector
from utils.models import count_params, make_kan


class AutogradObjective(ParamVector):
    """``loss_fn()`` and its autograd gradient as functions of ``params`` packed in one vector.

    Evaluating at theta writes theta into the parameters (the loss reads them); ``set`` leaves the
    model at the optimizer's result.
    """

    def __init__(self, params, loss_fn):
        super().__init__(params)
        self.loss_fn = loss_fn

    def __call__(self, theta):
        self.set(theta)
        with torch.enable_grad():
            loss = self.loss_fn()
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        grad = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(self.params, grads)])
        return loss.item(), grad.double().cpu().numpy()


def split_budget(epochs: int, n_stages: int) -> list[int]:
    """Steps per stage: equal shares, the last stage gets the remainder.

    With fewer epochs than stages only the first ``epochs`` stages run, one step each.
    """
    if epochs < n_stages:
        return [1] * epochs
    share = epochs // n_stages
    return [share] * (n_stages - 1) + [epochs - share * (n_stages - 1)]


class Recorder:
    """Rows of one trained configuration: one per epoch, cumulative training wall time."""

    def __init__(self, problem, base_row: dict):
        self.problem, self.base_row = problem, base_row
        self.rows, self.epoch, self.wall = [], 0, 0.0

    def step(self, seconds: float, forward, model, **extra) -> bool:
        """Record the epoch just trained; False when training must stop (non-finite loss)."""
        metrics = self.problem.evaluate(forward)
        self._append(seconds, model, metrics, extra)
        return math.isfinite(metrics["train_loss"])

    def fail(self, seconds: float, model, **extra):
        self._append(seconds, model, dict.fromkeys(self.problem.metric_names, float("nan")), extra)

    def _append(self, seconds, model, metrics, extra):
        self.epoch += 1
        self.wall += seconds
        self.rows.append({**self.base_row, "epoch": self.epoch, **metrics, "wall_time": self.wall,
                          "num_params": count_params(model), **extra})


def run_steps(make_objective, n_steps, recorder: Recorder, forward, model, before_step=None, **extra) -> bool:
    """n_steps LBFGS steps, each recorded with ``forward``'s metrics. False once training diverged.

    ``make_objective()`` is called at every step, after ``before_step(step)``, which may change
    the model (grid updates); the optimizer's curvature history carries over, as in pykan's fit().
    """
    opt = LBFGS(**LBFGS_OPTIONS)
    for s in range(n_steps):
        t0 = time.perf_counter()
        try:
            if before_step is not None:
                before_step(s)
            objective = make_objective()
            objective.set(opt.step(objective, objective.x0()))
        except (RuntimeError, ValueError, torch.linalg.LinAlgError) as e:
            # a diverged model (NaN in a grid update, a failed least-squares fit) is a result, not a crash
            print(f"training stopped at a failed step: {type(e).__name__}: {str(e).splitlines()[0]}",
                  file=sys.stderr)
            recorder.fail(time.perf_counter() - t0, model, **extra)
            return False
        if not recorder.step(time.perf_counter() - t0, forward, model, **extra):
            return False
    return True


def train_net(model, problem, epochs, recorder: Recorder):
    """MLP / SIREN: ``epochs`` LBFGS steps."""
    objective = AutogradObjective([p for p in model.parameters() if p.requires_grad], lambda: problem.loss(model))
    run_steps(lambda: objective, epochs, recorder, model, model)
    return model


# ----------------------------------------------------------------------------- KANs

def _quiet(model):
    """refine() and prune() return models with auto_save=True, which write checkpoints."""
    model.auto_save = False
    return model


def _grids_ok(model) -> bool:
    return all(bool(torch.isfinite(l.grid).all()) and bool((torch.diff(l.grid, dim=1) > 0).all())
               for l in model.act_fun)


def safe_update_grid(model, x):
    """pykan's update_grid, undone if it collapses a grid (zero spacing gives NaN losses after pruning)."""
    saved = [(l.grid.data.clone(), l.coef.data.clone()) for l in model.act_fun]
    try:
        kan_fast.update_grid(model, x)
        ok = _grids_ok(model)
    except (RuntimeError, torch.linalg.LinAlgError):
        ok = False
    if not ok:
        for l, (g, c) in zip(model.act_fun, saved):
            l.grid.data, l.coef.data = g, c


def kan_objective(model, problem, loss_fn=None):
    """What run_steps optimizes: for regression with a cubic KAN on the CPU the compiled MSE
    objective (rebuilt when a grid update changes the grids it copied); otherwise autograd through
    the fast forward (PDE residuals, the sparsify stage's regularizer, GPUs, other spline orders)."""
    if loss_fn is None and not problem.is_pde and problem.train_x.device.type == "cpu" and kan_numba.supports(model):
        built = {}

        def objective():
            grids = [layer.grid.detach().clone() for layer in model.act_fun]
            if "grids" not in built or not all(map(torch.equal, grids, built["grids"])):
                built.update(grids=grids, objective=kan_numba.MSEObjective(model, problem.train_x, problem.train_y))
            return built["objective"]
        return objective
    fwd = lambda x: kan_fast.forward(model, x)  # noqa: E731
    objective = AutogradObjective(kan_fast.trainable_params(model), loss_fn or (lambda: problem.loss(fwd)))
    return lambda: objective


def grid_update_schedule(model, x):
    """pykan fit()'s update_grid calls, as a run_steps ``before_step``."""
    def before_step(s):
        if s % GRID_UPDATE_EVERY == 0 and s < GRID_UPDATE_UNTIL:
            safe_update_grid(model, x)
    return before_step


def _train_kan_stage(model, problem, steps, recorder, loss_fn=None, **extra) -> bool:
    kan_fast.check_fast_path(model)
    fwd = lambda x: kan_fast.forward(model, x)  # noqa: E731
    return run_steps(kan_objective(model, problem, loss_fn), steps, recorder, fwd, model,
                     grid_update_schedule(model, problem.train_x), grid_size=model.grid, **extra)


def refine(model, grid, x):
    model.cache_data = x  # pykan refines from the last forward's inputs
    with torch.random.fork_rng(devices=[]):  # its constructor reseeds the global RNGs
        return _quiet(model.refine(grid))


def _no_snapshot(model, tag):
    pass


def train_kan(problem, epochs, recorder: Recorder, seed=0, device="cpu", grids=KAN_GRIDS, snapshot=_no_snapshot,
              width=KAN_WIDTH):
    """pykan KAN [n_in, width, 1]; grid extension through ``grids``, training continuing at each grid.

    ``snapshot(model, tag)`` is called at the end of every grid stage.
    """
    model = make_kan([problem.n_in, width, 1], grids[0], seed=seed, device=device)
    return _grid_schedule(model, problem, split_budget(epochs, len(grids)), grids, recorder,
                          lambda m: snapshot(m, "kan"))


def _grid_schedule(model, problem, stage_steps, grids, recorder, snapshot, **columns):
    """Train at grids[0], refine to grids[1], train, ... until a stage diverges; the last model.

    ``columns`` are added to every row; ``snapshot(model)`` runs at the end of every stage.
    """
    for i, steps in enumerate(stage_steps):
        if i > 0:
            model = refine(model, grids[i], problem.train_x)
        ok = _train_kan_stage(model, problem, steps, recorder, **columns)
        snapshot(model)
        if not ok:
            break
    return model


def prune(model, x, node_th=PRUNE_NODE_TH, edge_th=PRUNE_EDGE_TH):
    """pykan's ``prune(node_th, edge_th)`` (nodes, then edges) without its checkpoint logging, which writes files."""
    model.get_act(x)
    with torch.random.fork_rng(devices=[]):
        model = _quiet(model.prune_node(node_th, log_history=False))
    model.forward(model.cache_data)
    model.attribute()
    model.prune_edge(edge_th, log_history=False)
    return model


def train_kan_pruned(problem, epochs, recorder: Recorder, seed=0, device="cpu", grids=KAN_GRIDS,
                     snapshot=_no_snapshot, width=KAN_WIDTH, lamb=PRUNE_LAMB, node_th=PRUNE_NODE_TH,
                     edge_th=PRUNE_EDGE_TH):
    """The KAN paper's protocol: sparsify, prune, retrain the pruned net with grid extension.

    The sparsify stage's objective is exactly pykan's ``fit(lamb=lamb)``: the raw loss plus lamb
    times pykan's regularizer (l1 + entropy of the spline activations' scales). It uses pykan's own
    forward, since the regularizer reads the activations pykan records; it is one stage of the
    budget, the retrain stages at each grid are the rest.
    """
    model = make_kan([problem.n_in, width, 1], grids[0], seed=seed, device=device)
    stages = split_budget(epochs, len(grids) + 1)

    def sparsify_loss():  # the regularizer reads the activations of the loss's last pykan forward
        return problem.loss(model) + lamb * model.get_reg(*PRUNE_REG)

    ok = _train_kan_stage(model, problem, stages[0], recorder, loss_fn=sparsify_loss,
                          stage="sparsify", is_pruned=False)
    snapshot(model, "sparsify")
    if not ok or len(stages) == 1:
        return model
    model = prune(model, problem.train_x, node_th, edge_th)
    return _grid_schedule(model, problem, stages[1:], grids, recorder, lambda m: snapshot(m, "retrain"),
                          stage="retrain", is_pruned=True)
