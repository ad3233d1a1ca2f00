"""Poisson problems defined by their exact solution, and training from the equation itself.

An earlier pipeline "solved" these sections by regressing the forcing f. Here each problem is the
equation ``sign * Lap u = f`` on a box with u = 0 on its boundary, and the default (``pinn``) mode
trains only from the equation, as in the KAN paper (section 3.4):

    loss = alpha * mean over interior points of (sign * Lap u - f)^2 + mean over boundary points of u^2

with the exact u used only to measure errors. ``supervised`` mode fits u from samples instead, for
comparison. Sign: ``-Lap u = f`` (sign = -1) for the first six problems; the KAN paper's problem
``poisson_2d_spec`` is written ``Lap u = f`` (sign = +1) on [-1, 1]^2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from utils.datasets import data_seed, dense_grid, mse, uniform

PI = math.pi
sin, cos = torch.sin, torch.cos


@dataclass(frozen=True)
class PoissonPDE:
    domain: tuple            # ((lo, hi), ...) per dimension
    u: Callable              # exact solution, (n, d) -> (n, 1)
    f: Callable              # forcing
    sign: int = -1           # the equation is sign * Lap u = f

    @property
    def dim(self) -> int:
        return len(self.domain)


def _x(p, i):
    return p[:, i:i + 1]


PROBLEMS = {
    "poisson_1d_sin": PoissonPDE(((0.0, 1.0),), lambda p: sin(PI * _x(p, 0)),
                                 lambda p: PI ** 2 * sin(PI * _x(p, 0))),
    "poisson_1d_poly": PoissonPDE(((0.0, 1.0),), lambda p: _x(p, 0) * (1 - _x(p, 0)),
                                  lambda p: torch.full_like(_x(p, 0), 2.0)),
    "poisson_1d_highfreq": PoissonPDE(((0.0, 1.0),), lambda p: sin(4 * PI * _x(p, 0)),
                                      lambda p: 16 * PI ** 2 * sin(4 * PI * _x(p, 0))),
    "poisson_2d_sin": PoissonPDE(((0.0, 1.0), (0.0, 1.0)), lambda p: sin(PI * _x(p, 0)) * sin(PI * _x(p, 1)),
                                 lambda p: 2 * PI ** 2 * sin(PI * _x(p, 0)) * sin(PI * _x(p, 1))),
    "poisson_2d_poly": PoissonPDE(((0.0, 1.0), (0.0, 1.0)),
                                  lambda p: _x(p, 0) * (1 - _x(p, 0)) * _x(p, 1) * (1 - _x(p, 1)),
                                  lambda p: 2 * _x(p, 1) * (1 - _x(p, 1)) + 2 * _x(p, 0) * (1 - _x(p, 0))),
    "poisson_2d_highfreq": PoissonPDE(((0.0, 1.0), (0.0, 1.0)),
                                      lambda p: sin(4 * PI * _x(p, 0)) * sin(4 * PI * _x(p, 1)),
                                      lambda p: 32 * PI ** 2 * sin(4 * PI * _x(p, 0)) * sin(4 * PI * _x(p, 1))),
    "poisson_2d_spec": PoissonPDE(((-1.0, 1.0), (-1.0, 1.0)),
                                  lambda p: sin(PI * _x(p, 0)) * sin(PI * _x(p, 1) ** 2),
                                  lambda p: (-PI ** 2 * (1 + 4 * _x(p, 1) ** 2) * sin(PI * _x(p, 0)) * sin(PI * _x(p, 1) ** 2)
                                             + 2 * PI * sin(PI * _x(p, 0)) * cos(PI * _x(p, 1) ** 2)),
                                  sign=+1),
}
SECTION1_2 = ("poisson_1d_sin", "poisson_1d_poly", "poisson_1d_highfreq")
SECTION1_3 = ("poisson_2d_sin", "poisson_2d_poly", "poisson_2d_highfreq", "poisson_2d_spec")

# KAN paper defaults (2D): alpha = 0.01, 10,000 interior and 800 boundary points. In 1D the
# boundary is the two end points, and 1000 interior points (as many as section 1.1's data) are
# 10 times denser along the axis than the paper's 10,000 points are along each axis in 2D.
DEFAULTS = {1: {"alpha": 0.01, "n_interior": 1000, "n_boundary": 2},
            2: {"alpha": 0.01, "n_interior": 10_000, "n_boundary": 800}}
N_SUPERVISED = 1000


def derivatives(fn, x, create_graph: bool):
    """u, grad u and Lap u of ``fn`` at x, by autograd."""
    x = x.detach().requires_grad_(True)
    u = fn(x)
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = torch.zeros_like(u)
    for i in range(x.shape[1]):
        if g.requires_grad:  # a ReLU network's gradient is piecewise constant: no second derivative
            (h,) = torch.autograd.grad(g[:, i].sum(), x, create_graph=create_graph, allow_unused=True,
                                       retain_graph=create_graph or i < x.shape[1] - 1)
            if h is not None:
                lap = lap + h[:, i:i + 1]
    return u, g, lap


def boundary_points(domain, n, generator, device):
    """n points spread evenly over the faces of the box (the two end points in 1D)."""
    if len(domain) == 1:
        return torch.tensor([[domain[0][0]], [domain[0][1]]], dtype=torch.float64, device=device)
    lo, hi = [d[0] for d in domain], [d[1] for d in domain]
    faces = []
    per_face = n // (2 * len(domain))
    for axis in range(len(domain)):
        for value in (lo[axis], hi[axis]):
            p = uniform(per_face, lo, hi, generator, "cpu")
            p[:, axis] = value
            faces.append(p)
    return torch.cat(faces).to(device)


class PoissonProblem:
    """What training and the metrics need of one PDE problem in one mode.

    ``val_loss`` is the training objective on a fresh seeded set of points (PINN: interior and
    boundary collocation points; supervised: samples of u): configurations are chosen by it, so
    the exact u is never used to choose, only to measure.
    """

    is_pde = True
    metric_names = ("train_loss", "val_loss", "test_loss", "dense_mse", "dense_max_err", "dense_rel_l2",
                    "h1_error", "residual_mse")

    def __init__(self, name, seed, dataset_idx, device="cpu", mode="pinn", alpha=None,
                 n_interior=None, n_boundary=None, pde: PoissonPDE | None = None):
        """``pde``: a problem of one's own (``utils.api.solve_poisson``); default: the named one."""
        self.name, self.pde, self.mode = name, pde or PROBLEMS[name], mode
        defaults = DEFAULTS[self.pde.dim]
        self.alpha = defaults["alpha"] if alpha is None else alpha
        n_int = defaults["n_interior"] if n_interior is None else n_interior
        n_bnd = defaults["n_boundary"] if n_boundary is None else n_boundary
        self.n_in = self.pde.dim
        g = torch.Generator().manual_seed(data_seed(seed, dataset_idx))
        lo, hi = [d[0] for d in self.pde.domain], [d[1] for d in self.pde.domain]
        if mode == "pinn":
            self.train_x = uniform(n_int, lo, hi, g, device)       # interior collocation points
            self.train_b = boundary_points(self.pde.domain, n_bnd, g, device)
            self.test_x = uniform(n_int, lo, hi, g, device)
            self.test_b = boundary_points(self.pde.domain, n_bnd, g, device)
            self.val_x = uniform(n_int, lo, hi, g, device)
            self.val_b = boundary_points(self.pde.domain, n_bnd, g, device)
            self.f_train, self.f_val, self.f_test = (self.pde.f(x) for x in (self.train_x, self.val_x, self.test_x))
            self.zero_loss = self.alpha * torch.mean(self.f_train ** 2).item()
        elif mode == "supervised":
            self.train_x = uniform(N_SUPERVISED, lo, hi, g, device)
            self.test_x = uniform(N_SUPERVISED, lo, hi, g, device)
            self.val_x = uniform(N_SUPERVISED, lo, hi, g, device)
            self.train_y, self.val_y, self.test_y = (self.pde.u(x) for x in (self.train_x, self.val_x, self.test_x))
            self.zero_loss = torch.mean(self.train_y ** 2).item()
        else:
            raise ValueError(f"unknown mode {mode!r}")
        self.dense_x = dense_grid(self.pde.domain, device)
        u, g_exact, _ = derivatives(self.pde.u, self.dense_x, create_graph=False)
        self.dense_u, self.dense_grad = u.detach(), g_exact.detach()
        self.dense_f = self.pde.f(self.dense_x)

    def pinn_loss(self, fn, x, f, b, create_graph=True):
        # boundary first: pykan's sparsity regularizer reads the last forward, the interior one
        boundary = torch.mean(fn(b) ** 2)
        _, _, lap = derivatives(fn, x, create_graph)
        return self.alpha * mse(self.pde.sign * lap, f) + boundary

    def loss(self, fn):
        if self.mode == "pinn":
            return self.pinn_loss(fn, self.train_x, self.f_train, self.train_b)
        return mse(fn(self.train_x), self.train_y)

    def evaluate(self, fn) -> dict:
        if self.mode == "pinn":
            train = self.pinn_loss(fn, self.train_x, self.f_train, self.train_b, create_graph=False).item()
            val = self.pinn_loss(fn, self.val_x, self.f_val, self.val_b, create_graph=False).item()
            test = self.pinn_loss(fn, self.test_x, self.f_test, self.test_b, create_graph=False).item()
        else:
            with torch.no_grad():
                train = mse(fn(self.train_x), self.train_y).item()
                val = mse(fn(self.val_x), self.val_y).item()
                test = mse(fn(self.test_x), self.test_y).item()
        u, g, lap = derivatives(fn, self.dense_x, create_graph=False)
        u, g, lap = u.detach(), g.detach(), lap.detach()
        err = u - self.dense_u
        return {"train_loss": train, "val_loss": val, "test_loss": test,
                "dense_mse": torch.mean(err ** 2).item(), "dense_max_err": err.abs().max().item(),
                "dense_rel_l2": (err.norm() / self.dense_u.norm()).item(),
                "h1_error": torch.mean(torch.sum((g - self.dense_grad) ** 2, dim=1)).item(),
                "residual_mse": mse(self.pde.sign * lap, self.dense_f).item()}
