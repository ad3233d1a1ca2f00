"""One task's data: the seeded random points, the dense grid, and the targets (or u, grad u and f) there.

Points and targets are float64 whatever the training precision: a target computed at float32 points
and cast up carries the points' rounding (sin(2 pi x) to ~1e-7), which limited the dense MSE of
section 1.1 to about 1e-14; a model trained in float32 sees them rounded. Data are sampled on the
problem's domain and dense errors are measured there only (an earlier pipeline sampled [-1, 1] for
functions written for [0, 1] and measured outside the training domain). The losses and metrics of
these data live in one place, ``utils.problems.stacked`` (what the pipeline runs).
"""
from __future__ import annotations

import torch

from utils import config
from utils.problems.functions import DOMAIN_1D
from utils.problems.poisson import PROBLEMS, PoissonPDE


def data_seed(seed: int, dataset_idx: int) -> int:
    """Each dataset's points depend on the run seed and the dataset only, never on the family."""
    return 1_000_003 * seed + dataset_idx


def uniform(n, lo, hi, generator, device):
    """n points uniform in the box [lo, hi] (float64)."""
    lo, hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    return (lo + (hi - lo) * torch.rand(n, lo.numel(), generator=generator, dtype=torch.float64)).to(device)


def dense_grid(domain, device):
    """The uniform grid errors are measured on (float64): 10,000 points in 1D, 100 x 100 in 2D."""
    if len(domain) == 1:
        return torch.linspace(*domain[0], config.N_DENSE_1D, dtype=torch.float64, device=device)[:, None]
    axes = [torch.linspace(lo, hi, config.N_DENSE_2D, dtype=torch.float64, device=device) for lo, hi in domain]
    return torch.stack([a.reshape(-1) for a in torch.meshgrid(*axes, indexing="ij")], dim=1)


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


def derivatives(fn, x, create_graph: bool):
    """u, grad u and Lap u of ``fn`` at x, by autograd (the exact solution's, for its dense values)."""
    x = x.detach().requires_grad_(True)
    u = fn(x)
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = torch.zeros_like(u)
    for i in range(x.shape[1]):
        if g.requires_grad:  # a piecewise linear function's gradient is constant: no second derivative
            (h,) = torch.autograd.grad(g[:, i].sum(), x, create_graph=create_graph, allow_unused=True,
                                       retain_graph=create_graph or i < x.shape[1] - 1)
            if h is not None:
                lap = lap + h[:, i:i + 1]
    return u, g, lap


class RegressionProblem:
    """Fit y = f(x) from 1000 uniform random samples; choose on 1000 others, measure on 1000 more and a dense grid.

    The validation sample (``val_loss``) is what configurations and KAN grid stages are chosen by;
    the test sample and the dense grid only measure. It is drawn after the train and test samples,
    so those are the same points they were before validation existed.
    """

    is_pde = False
    metric_names = ("train_loss", "val_loss", "test_loss", "dense_mse", "dense_max_err")

    def __init__(self, name, fn, seed, dataset_idx, device="cpu", domain=DOMAIN_1D):
        g = torch.Generator().manual_seed(data_seed(seed, dataset_idx))
        lo, hi = [d[0] for d in domain], [d[1] for d in domain]
        self.name, self.n_in = name, len(domain)
        self.train_x = uniform(config.N_TRAIN, lo, hi, g, device)
        self.test_x = uniform(config.N_TEST, lo, hi, g, device)
        self.val_x = uniform(config.N_VAL, lo, hi, g, device)
        self.dense_x = dense_grid(domain, device)
        self.train_y, self.val_y, self.test_y, self.dense_y = (fn(x) for x in (self.train_x, self.val_x, self.test_x,
                                                                                 self.dense_x))


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
        defaults = config.PDE_DEFAULTS[self.pde.dim]
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
        elif mode == "supervised":
            self.train_x = uniform(config.N_SUPERVISED, lo, hi, g, device)
            self.test_x = uniform(config.N_SUPERVISED, lo, hi, g, device)
            self.val_x = uniform(config.N_SUPERVISED, lo, hi, g, device)
            self.train_y, self.val_y, self.test_y = (self.pde.u(x) for x in (self.train_x, self.val_x, self.test_x))
        else:
            raise ValueError(f"unknown mode {mode!r}")
        self.dense_x = dense_grid(self.pde.domain, device)
        u, g_exact, _ = derivatives(self.pde.u, self.dense_x, create_graph=False)
        self.dense_u, self.dense_grad = u.detach(), g_exact.detach()
        self.dense_f = self.pde.f(self.dense_x)
