"""Section 1.1's target functions and the regression problem every family is trained on.

All functions live on [0, 1]: data are sampled there and dense errors are measured there only
(an earlier pipeline sampled [-1, 1] for functions written for [0, 1] and measured outside the
training domain). Points and targets are float64 whatever the training precision: a target
computed at float32 points and cast up carries the points' rounding (sin(2 pi x) to ~1e-7), which
limited the dense MSE of section 1.1 to about 1e-14; a model trained in float32 sees them rounded.
"""
from __future__ import annotations

import math

import torch

PI = math.pi


def _piecewise(x):
    level = lambda v: torch.full_like(x, v)  # noqa: E731  (in x's dtype: a Python constant would be float32)
    return torch.where(x < 0.3, level(-0.5), torch.where(x < 0.6, level(0.3), torch.where(x < 0.8, level(1.0),
                                                                                           level(-0.2))))


FUNCTIONS_1D = {
    **{f"sin_freq{nu}": (lambda nu: lambda x: torch.sin(2 * PI * nu * x))(nu) for nu in range(1, 6)},
    "piecewise": _piecewise,
    "sawtooth": lambda x: torch.remainder(x, 0.25) / 0.25,
    "polynomial": lambda x: x ** 3 - 2 * x ** 2 + x,
    "poisson_1d_highfreq": lambda x: 16 * PI ** 2 * torch.sin(4 * PI * x),
}

N_TRAIN = N_VAL = N_TEST = 1000
N_DENSE_1D = 10_000
N_DENSE_2D = 100  # per axis


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
        return torch.linspace(*domain[0], N_DENSE_1D, dtype=torch.float64, device=device)[:, None]
    axes = [torch.linspace(lo, hi, N_DENSE_2D, dtype=torch.float64, device=device) for lo, hi in domain]
    return torch.stack([a.reshape(-1) for a in torch.meshgrid(*axes, indexing="ij")], dim=1)


def mse(pred, target):
    return torch.mean((pred - target) ** 2)


class RegressionProblem:
    """Fit y = f(x) from 1000 uniform random samples; choose on 1000 others, measure on 1000 more and a dense grid.

    The validation sample (``val_loss``) is what configurations and KAN grid stages are chosen by;
    the test sample and the dense grid only measure. It is drawn after the train and test samples,
    so those are the same points they were before validation existed.
    """

    is_pde = False
    metric_names = ("train_loss", "val_loss", "test_loss", "dense_mse", "dense_max_err")

    def __init__(self, name, fn, seed, dataset_idx, device="cpu", domain=((0.0, 1.0),)):
        g = torch.Generator().manual_seed(data_seed(seed, dataset_idx))
        lo, hi = [d[0] for d in domain], [d[1] for d in domain]
        self.name, self.n_in = name, len(domain)
        self.train_x = uniform(N_TRAIN, lo, hi, g, device)
        self.test_x = uniform(N_TEST, lo, hi, g, device)
        self.val_x = uniform(N_VAL, lo, hi, g, device)
        self.dense_x = dense_grid(domain, device)
        self.train_y, self.val_y, self.test_y, self.dense_y = (fn(x) for x in (self.train_x, self.val_x, self.test_x,
                                                                                 self.dense_x))
        self.zero_loss = mse(torch.zeros_like(self.train_y), self.train_y).item()  # the loss of u = 0
        # one forward for all evaluation sets (the models are pointwise)
        self._eval_x = torch.cat([self.train_x, self.val_x, self.test_x, self.dense_x])

    def loss(self, f):
        return mse(f(self.train_x), self.train_y)

    @torch.no_grad()
    def evaluate(self, f) -> dict:
        pred = f(self._eval_x)
        tr, va, te, de = torch.split(pred, [len(self.train_x), len(self.val_x), len(self.test_x), len(self.dense_x)])
        err = (de - self.dense_y).abs()
        return {"train_loss": mse(tr, self.train_y).item(), "val_loss": mse(va, self.val_y).item(),
                "test_loss": mse(te, self.test_y).item(),
                "dense_mse": torch.mean(err ** 2).item(), "dense_max_err": err.max().item()}
