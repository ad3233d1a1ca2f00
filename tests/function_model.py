"""A fixed function as a one-member model of the stacked engine, to measure it with the pipeline's own
losses and metrics (``utils.problems.stacked``): the exact solution, the zero function."""
import torch

from utils.problems.data import derivatives


class FunctionModel:
    """fn: (n, d) -> (n, 1), the same for every member; X (its parameters) is ignored."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, X, x, members=None):
        return torch.stack([self.fn(xb) for xb in x])

    def derivatives(self, X, x, members=None):
        with torch.enable_grad():  # by autograd, also where the metrics run without gradients
            parts = [derivatives(self.fn, xb, create_graph=False) for xb in x]
        return tuple(torch.stack([p[i].detach() for p in parts]) for i in range(3))

    def astype(self, dtype):
        return self


NO_PARAMETERS = torch.zeros(1, 0, dtype=torch.float64)
