"""What an ensemble minimizes and measures: its members' problems stacked, losses and metrics batched.

Each member is one task's data (``data.RegressionProblem`` or ``data.PoissonProblem``: the sampling,
seeds and formulas live there); here their tensors are stacked along a leading member axis, so one
call computes every member's loss (differentiable in the parameter rows X) or every member's
metrics. This is the only implementation of the losses and metrics: a single model is an ensemble
of one. A model is anything with ``forward(X, x, members)`` and, for PDE losses,
``derivatives(X, x, members)`` -> (u, grad u, Lap u) (``engine.nets.StackedNet``,
``engine.kan_stack.StackedKAN``); ``members`` (a long tensor, or None for all) says whose data and
buffers the rows of X are.
"""
from __future__ import annotations

import copy
import math

import torch


def _mse(pred, target):
    """Per member: mean over points and outputs."""
    return ((pred - target) ** 2).mean((1, 2))


class StackedProblem:
    """B problems of one kind and size (a section's datasets and seeds under one set of options)."""

    def __init__(self, problems):
        p0 = problems[0]
        self.problems = problems
        self.metric_names = p0.metric_names
        self.is_pde = p0.is_pde
        self.mode = getattr(p0, "mode", "regression")
        self.n_in = p0.n_in
        st = lambda name: torch.stack([getattr(p, name) for p in problems])  # noqa: E731
        sets = ("train", "val", "test")
        if self.mode == "pinn":
            self.x = {s: st(f"{s}_x") for s in sets}
            self.b = {s: st(f"{s}_b") for s in sets}
            self.f = {s: st(f"f_{s}") for s in sets}
            self.alpha = p0.alpha
        else:
            self.x = {s: st(f"{s}_x") for s in sets}
            self.y = {s: st(f"{s}_y") for s in sets}
        self.dense_x = st("dense_x")
        if self.is_pde:
            self.dense_u, self.dense_grad, self.dense_f = st("dense_u"), st("dense_grad"), st("dense_f")
            self.sign = torch.tensor([float(p.pde.sign) for p in problems], dtype=torch.float64, device=p0.train_x.device)
        else:
            self.dense_y = st("dense_y")
        self.n_members = len(problems)
        self._order = torch.arange(len(problems), device=p0.train_x.device)
        self._base, self._casts = self, {torch.float64: self}  # the members' data are float64

    def select(self, members):
        """The stacked problem of some members (indices into this one's)."""
        return StackedProblem([self.problems[b] for b in members])

    def take(self, t, members):
        """The members' rows of t; t itself for all members in order (so caches keyed on it hold)."""
        if members is None or (len(members) == len(t) and bool((members == self._order[:len(t)]).all())):
            return t
        return t[members]

    @property
    def train_x(self):
        """Where the model's inputs come from during training (grid updates, the regularizer)."""
        return self.x["train"]

    def pinn_loss(self, model, X, s, members, create_graph=True):
        """alpha * mean (sign Lap u - f)^2 over interior points + mean u^2 over boundary points."""
        _, _, lap = model.derivatives(X, self.take(self.x[s], members), members)
        boundary = (model.forward(X, self.take(self.b[s], members), members) ** 2).mean((1, 2))
        sign = self.take(self.sign, members)[:, None, None]
        return self.alpha * _mse(sign * lap, self.take(self.f[s], members)) + boundary

    def loss(self, model, X, members=None, split="train"):
        """The training objective of each member (b,), differentiable in X."""
        if self.mode == "pinn":
            return self.pinn_loss(model, X, split, members)
        return _mse(model.forward(X, self.take(self.x[split], members), members), self.take(self.y[split], members))

    def evaluate(self, model, X, members=None) -> list[dict]:
        """Every metric of each member, one dict per row of X: train/val/test losses and dense errors.

        Computed in float64 whatever the training dtype, from the problem's float64 points and
        targets: the parameters the model holds (X in the model's dtype) are exact in float64, so a
        recorded number is the model's to ~1e-15, and a saved model evaluated afresh by any correct
        float64 code (pykan's own forward, a torch module) reproduces it; in float32 two correct
        implementations differed by 1e-6 (measured).
        """
        return self.cast(torch.float64)._metrics(model.astype(torch.float64), X.to(torch.float64), members)

    def cast(self, dtype):
        """This problem with its points and targets in ``dtype`` (what a model training in that
        precision sees), made once from the float64 original and kept."""
        if self._base is not self:
            return self._base.cast(dtype)
        if dtype not in self._casts:
            other = copy.copy(self)
            to = lambda t: t.to(dtype) if torch.is_tensor(t) and t.is_floating_point() else t  # noqa: E731
            for name, value in vars(self).items():
                if name not in ("_base", "_casts"):
                    setattr(other, name, {k: to(v) for k, v in value.items()} if isinstance(value, dict) else to(value))
            self._casts[dtype] = other
        return self._casts[dtype]

    @torch.no_grad()
    def _metrics(self, model, X, members=None) -> list[dict]:
        out = {}
        if self.mode == "pinn":
            for s in ("train", "val", "test"):
                out[f"{s}_loss"] = self.pinn_loss(model, X, s, members)
        elif not self.is_pde:  # one forward for every evaluation set (the models are pointwise)
            sets = [self.take(self.x[s], members) for s in ("train", "val", "test")] + [self.take(self.dense_x, members)]
            pred = model.forward(X, torch.cat(sets, 1), members)
            parts = torch.split(pred, [t.shape[1] for t in sets], 1)
            for s, p in zip(("train", "val", "test"), parts):
                out[f"{s}_loss"] = _mse(p, self.take(self.y[s], members))
            err = (parts[3] - self.take(self.dense_y, members)).abs()
            out["dense_mse"], out["dense_max_err"] = (err ** 2).mean((1, 2)), err.amax((1, 2))
        else:
            for s in ("train", "val", "test"):
                out[f"{s}_loss"] = _mse(model.forward(X, self.take(self.x[s], members), members),
                                        self.take(self.y[s], members))
        if self.is_pde:
            u, g, lap = model.derivatives(X, self.take(self.dense_x, members), members)
            exact = self.take(self.dense_u, members)
            err = u - exact
            out["dense_mse"], out["dense_max_err"] = (err ** 2).mean((1, 2)), err.abs().amax((1, 2))
            out["dense_rel_l2"] = err.flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)
            out["h1_error"] = ((g - self.take(self.dense_grad, members)) ** 2).sum(2).mean(1)
            sign = self.take(self.sign, members)[:, None, None]
            out["residual_mse"] = _mse(sign * lap, self.take(self.dense_f, members))
        values = torch.stack([out[name].to(torch.float64) for name in self.metric_names], 1).tolist()
        return [dict(zip(self.metric_names, row)) for row in values]


def failed_metrics(problem) -> dict:
    return dict.fromkeys(problem.metric_names, math.nan)
