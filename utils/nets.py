"""MLPs and SIRENs of one shape trained as one: B members' parameters are the rows of a (B, P) matrix.

Why explicit batched matmuls (``torch.baddbmm`` over the member axis) and not torch.func
(``stack_module_state`` + ``vmap(grad(functional_call))``): measured on one CPU thread, a loss and
gradient of B tanh MLPs [1,5,5,1] on 1000 points took 0.58 / 1.6 / 6.7 / 20 ms at B = 1, 9, 45, 135
with baddbmm and 1.5 / 2.7 / 8.0 / 23 ms with vmap (one by one: 0.50 / 4.4 / 22 / 73 ms).
The flat rows are also what the optimizer works on, so no stacking or unstacking per evaluation.

A member is initialized exactly as the single module (``utils.models.MLP`` / ``SIREN``) built after
``torch.manual_seed(seed)``, and ``module(X[b])`` gives that module back, so saved models are
ordinary torch modules.

``derivatives`` propagates value, gradient and Laplacian in x forward through the layers (no
nested autograd): for z = W h + b, grad z = W grad h and Lap z = W Lap h; for a = s(z),
grad a = s'(z) grad z and Lap a = s''(z) |grad z|^2 + s'(z) Lap z.
"""
from __future__ import annotations

import math

import torch

from utils.config import SIREN_OMEGA0


def _activation(name: str, omega0: float = SIREN_OMEGA0):
    """s, and s with its first and second derivatives, of one activation (SIREN: sin(omega0 z))."""
    if name == "tanh":
        def derivs(z):
            t = torch.tanh(z)
            d1 = 1 - t * t
            return t, d1, -2 * t * d1
        return torch.tanh, derivs
    if name == "relu":
        return torch.relu, lambda z: (torch.relu(z), (z > 0).to(z.dtype), torch.zeros_like(z))
    if name == "silu":
        def derivs(z):
            s = torch.sigmoid(z)
            return z * s, s * (1 + z * (1 - s)), s * (1 - s) * (2 + z * (1 - 2 * s))
        return torch.nn.functional.silu, derivs
    if name == "sine":
        def derivs(z):
            sz, cz = torch.sin(omega0 * z), torch.cos(omega0 * z)
            return sz, omega0 * cz, -omega0 * omega0 * sz
        return lambda z: torch.sin(omega0 * z), derivs
    raise ValueError(f"unknown activation {name!r}")


def row_size(n_params: int) -> int:
    """Columns of a member's parameter row: n_params rounded up to 64 bytes (16 floats).

    Members are rows of one matrix, and torch's CPU kernels take paths that depend on where an
    operand starts (measured: the same member rounds differently as row 0 and as row 1 of a
    46-column matrix). With every row 64-byte aligned a member computes the same bits whatever its
    position and its companions, so an ensemble reproduces its members trained alone. The extra
    columns are never read: their gradient is zero and the optimizer leaves them at zero.
    """
    return -(-n_params // 16) * 16


def _matmul(h, W):
    """h W^T per member, h (B, n, in), W (B, out, in). A single output is a sum of products:
    torch's batched matrix-vector product rounds differently for one member than for several
    (measured), which would make a member's numbers depend on its ensemble; the sum does not."""
    if W.shape[1] == 1:
        return (h * W).sum(-1, keepdim=True)
    if W.shape[2] == 1:
        return h * W.transpose(1, 2)
    return _Linear.apply(h, W, torch.zeros_like(W[:, :, 0]))


class _Linear(torch.autograd.Function):
    """h W^T + b per member, whose weight gradient is a plain sum over the points.

    torch's batched matmul for the weight gradient (g^T h, a long contraction over the points)
    rounds a member differently depending on its position in the batch when g^T is a transposed
    view (measured), which would make a member's numbers depend on its ensemble.
    """

    @staticmethod
    def forward(ctx, h, W, b):
        ctx.save_for_backward(h, W)
        return torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        h, W = ctx.saved_tensors
        # both operands of the long contraction stored point-last: this layout rounds the same for a
        # member in any position (measured), and is 3-4x faster than products summed by torch
        gW = torch.bmm(g.transpose(1, 2).contiguous(), h.transpose(1, 2).contiguous().transpose(1, 2))
        return torch.bmm(g, W), gW, g.sum(1)


def _linear(h, W, b):
    if W.shape[1] == 1:
        return _matmul(h, W) + b.unsqueeze(1)
    if W.shape[2] == 1:  # one input: a product, whose gradients torch also computes as matrix-vector products
        return h * W.transpose(1, 2) + b.unsqueeze(1)
    return _Linear.apply(h, W, b)


class StackedNet:
    """B MLPs (``activation`` tanh / relu / silu) or SIRENs (``activation="sine"``) of one shape.

    Layers: ``depth`` linear maps n_in -> width -> ... -> width -> 1, the activation between them.
    Row layout of X: each layer's weight (out, in) then bias (out,), as ``module.parameters()``.
    """

    def __init__(self, family: str, n_in: int, width: int, depth: int, activation: str = "sine"):
        self.family, self.n_in, self.width, self.depth = family, n_in, width, depth
        self.activation = "sine" if family == "siren" else activation
        self.act, self.act_derivs = _activation(self.activation)
        dims = [n_in] + [width] * (depth - 1) + [1]
        self.shapes = [s for i in range(depth) for s in ((dims[i + 1], dims[i]), (dims[i + 1],))]
        self.n_params = sum(math.prod(s) for s in self.shapes)
        self.row_size = row_size(self.n_params)

    def module(self, row=None):
        """The single torch module of this shape; with ``row``, holding those parameters."""
        from utils.models import MLP, SIREN
        m = (SIREN(self.n_in, self.width, self.depth) if self.family == "siren"
             else MLP(self.n_in, self.width, self.depth, self.activation))
        if row is not None:
            with torch.no_grad():
                for p, v in zip(m.parameters(), self._views(row[None])):
                    p.copy_(v[0])
        return m

    def init(self, seeds, device="cpu", dtype=None):
        """(B, row_size): member b initialized as the module built after torch.manual_seed(seeds[b])."""
        X = torch.zeros(len(seeds), self.row_size, dtype=dtype or torch.get_default_dtype())
        for b, seed in enumerate(seeds):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                m = self.module()
            X[b, :self.n_params] = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
        return X.to(device)

    def _views(self, X):
        """Each layer's weights and biases, (B, out, in) and (B, out), viewing X."""
        out, at = [], 0
        for s in self.shapes:
            n = math.prod(s)
            out.append(X[:, at:at + n].view(X.shape[0], *s))
            at += n
        return out

    def forward(self, X, x, members=None):
        """Outputs (B, N, 1) of the members at their inputs x (B, N, n_in)."""
        views = self._views(X)
        h = x
        for l in range(self.depth):
            W, b = views[2 * l], views[2 * l + 1]
            h = _linear(h, W, b)
            if l < self.depth - 1:
                h = self.act(h)
        return h

    def derivatives(self, X, x, members=None):
        """Value (B, N, 1), gradient in x (B, N, n_in) and Laplacian in x (B, N, 1), forward-mode.

        The three travel as one tensor (B, N, 2 + n_in, width): every linear layer is one batched
        matmul for all of them, and only the value row receives the bias.
        """
        views = self._views(X)
        B, N, d = x.shape
        eye = torch.eye(d, dtype=x.dtype, device=x.device).expand(B, N, d, d)
        h = torch.cat([x.unsqueeze(2), eye, torch.zeros_like(x).unsqueeze(2)], 2)   # (B, N, 2 + d, d)
        for l in range(self.depth):
            W, b = views[2 * l], views[2 * l + 1]
            z = _matmul(h.reshape(B, -1, h.shape[-1]), W).view(B, N, 2 + d, -1)
            z = torch.cat([z[:, :, :1] + b[:, None, None, :], z[:, :, 1:]], 2)
            if l == self.depth - 1:
                h = z
                break
            s, ds, dds = self.act_derivs(z[:, :, 0])
            grad, lap = z[:, :, 1:1 + d], z[:, :, 1 + d]
            h = torch.cat([s.unsqueeze(2), ds.unsqueeze(2) * grad,
                           (dds * (grad * grad).sum(2) + ds * lap).unsqueeze(2)], 2)
        return h[:, :, 0], h[:, :, 1:1 + d, 0], h[:, :, 1 + d]

    def count_params(self, X=None) -> int:
        return self.n_params
