"""MLP and SIREN as plain torch modules: the single models the stacked engine reproduces member by member."""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from utils.config import SIREN_OMEGA0

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}


@contextlib.contextmanager
def default_dtype(dtype):
    """torch's default dtype set to ``dtype`` for a while: pykan builds its layers (and torch its
    modules) in the default dtype, so this is how a model is made in the training precision."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


class MLP(nn.Module):
    """``depth`` linear layers of width ``width``, the activation between them."""

    def __init__(self, in_dim: int = 1, width: int = 5, depth: int = 2, activation: str = "tanh"):
        super().__init__()
        self.config = dict(in_dim=in_dim, width=width, depth=depth, activation=activation)
        dims = [in_dim] + [width] * (depth - 1) + [1]
        layers = []
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < depth - 1:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class SIREN(nn.Module):
    """Sitzmann et al. 2020: sin(omega0 (Wx + b)) layers and a linear head, with their init.

    The init keeps pre-activations of every layer roughly uniform in [-pi/2, pi/2] times omega0,
    which is what lets a sine network train at all.
    """

    def __init__(self, in_dim: int = 1, width: int = 5, depth: int = 2, omega0: float = SIREN_OMEGA0):
        super().__init__()
        self.config = dict(in_dim=in_dim, width=width, depth=depth, omega0=omega0)
        self.omega0 = omega0
        dims = [in_dim] + [width] * (depth - 1) + [1]
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(depth))
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                n = layer.in_features
                bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / omega0
                layer.weight.uniform_(-bound, bound)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.sin(self.omega0 * layer(x))
        return self.layers[-1](x)
