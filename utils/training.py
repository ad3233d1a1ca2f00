"""Training: one optimizer loop for every family, the KAN grid schedule, the pruning protocol.

Budget: one epoch is one full-batch step of the optimizer, and every family gets the same
optimizer, pykan's own choice for KANs: LBFGS with 20 iterations per step, history 10 and a
strong-Wolfe line search. KANs spread the epochs over their grid schedule (``split_budget``).
After every step the problem's metrics are recorded, so every row holds that epoch's own values.
A step that produces a non-finite loss or raises is recorded as NaN and ends that model's
training; the sweep goes on.
"""
from __future__ import annotations

import math
import sys
import time

import torch

from utils import kan_fast
from utils.models import count_params, make_kan

KAN_WIDTH_HIDDEN = 5
KAN_GRIDS = (3, 5, 10, 20, 50, 100)
PRUNE_LAMB, PRUNE_NODE_TH, PRUNE_EDGE_TH = 1e-2, 1e-2, 3e-2
# pykan fit(): update_grid every 5 steps during the first 50 steps of each fit() call
GRID_UPDATE_EVERY, GRID_UPDATE_UNTIL = 5, 50


def lbfgs(params):
    return torch.optim.LBFGS(params, lr=1.0, max_iter=20, history_size=10, line_search_fn="strong_wolfe",
                             tolerance_grad=1e-32, tolerance_change=1e-32)


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


def run_steps(params, loss_fn, n_steps, recorder: Recorder, forward, model, before_step=None, **extra) -> bool:
    """n_steps LBFGS steps, each recorded with ``forward``'s metrics. False once training diverged."""
    opt = lbfgs(params)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    for s in range(n_steps):
        t0 = time.perf_counter()
        try:
            if before_step is not None:
                before_step(s)
            opt.step(closure)
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
    run_steps([p for p in model.parameters() if p.requires_grad], lambda: problem.loss(model), epochs,
              recorder, model, model)
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
        model.update_grid(x)
        ok = _grids_ok(model)
    except (RuntimeError, torch.linalg.LinAlgError):
        ok = False
    if not ok:
        for l, (g, c) in zip(model.act_fun, saved):
            l.grid.data, l.coef.data = g, c


def kan_forward(model, problem):
    """The fast forward; PDE losses differentiate it twice in x, so they need the autograd path."""
    create_graph = problem.is_pde
    return lambda x: kan_fast.forward(model, x, create_graph=create_graph)


def _train_kan_stage(model, problem, steps, recorder, loss_fn=None, **extra) -> bool:
    kan_fast.check_fast_path(model)
    fwd = kan_forward(model, problem)

    def before_step(s):
        if s % GRID_UPDATE_EVERY == 0 and s < GRID_UPDATE_UNTIL:
            safe_update_grid(model, problem.train_x)

    return run_steps(kan_fast.trainable_params(model), loss_fn or (lambda: problem.loss(fwd)), steps,
                     recorder, fwd, model, before_step, grid_size=model.grid, **extra)


def refine(model, grid, x):
    model.cache_data = x  # pykan refines from the last forward's inputs
    with torch.random.fork_rng(devices=[]):  # its constructor reseeds the global RNGs
        return _quiet(model.refine(grid))


def _no_snapshot(model, tag):
    pass


def train_kan(problem, epochs, recorder: Recorder, seed=0, device="cpu", grids=KAN_GRIDS, snapshot=_no_snapshot):
    """pykan KAN [n_in, 5, 1]; grid extension through ``grids``, training continuing at each grid.

    ``snapshot(model, tag)`` is called at the end of every grid stage.
    """
    model = make_kan([problem.n_in, KAN_WIDTH_HIDDEN, 1], grids[0], seed=seed, device=device)
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


def prune(model, x):
    """pykan's ``prune()`` (nodes, then edges) without its checkpoint logging, which writes files."""
    model.get_act(x)
    with torch.random.fork_rng(devices=[]):
        model = _quiet(model.prune_node(PRUNE_NODE_TH, log_history=False))
    model.forward(model.cache_data)
    model.attribute()
    model.prune_edge(PRUNE_EDGE_TH, log_history=False)
    return model


def train_kan_pruned(problem, epochs, recorder: Recorder, seed=0, device="cpu", grids=KAN_GRIDS,
                     snapshot=_no_snapshot):
    """The KAN paper's protocol: sparsify (lamb=1e-2), prune, retrain the pruned net with grid extension.

    The sparsify stage uses pykan's own forward, since its regularizer needs the activations
    pykan records; it is one stage of the budget, the retrain stages at each grid are the rest.
    The paper's lamb is calibrated for targets of order one, so in that stage the loss is measured
    relative to the zero model's loss: otherwise a target of amplitude 158 (poisson_1d_highfreq)
    makes the penalty negligible and nothing is pruned.
    """
    model = make_kan([problem.n_in, KAN_WIDTH_HIDDEN, 1], grids[0], seed=seed, device=device)
    stages = split_budget(epochs, len(grids) + 1)

    def sparsify_loss():  # the regularizer reads the activations of the loss's last pykan forward
        return (problem.loss(model) / problem.zero_loss
                + PRUNE_LAMB * model.get_reg("edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0))

    ok = _train_kan_stage(model, problem, stages[0], recorder, loss_fn=sparsify_loss,
                          stage="sparsify", is_pruned=False)
    snapshot(model, "sparsify")
    if not ok or len(stages) == 1:
        return model
    model = prune(model, problem.train_x)
    return _grid_schedule(model, problem, stages[1:], grids, recorder, lambda m: snapshot(m, "retrain"),
                          stage="retrain", is_pruned=True)
