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
grad a = s'(z) grad z and Lap a = s''(z) |grad z|^2 + s'(z) Lap z. This activation step takes for
each activation whichever measured faster: autograd through those expressions (tanh in a shorter
form, relu without the s'' term) or a written-out backward (silu, sine; ``WRITTEN_BACKWARD``).
"""
from __future__ import annotations

import math

import torch

from utils.config import SIREN_OMEGA0
from utils.models.modules import MLP, SIREN, default_dtype
from utils.numerics.lanes import pad_points
from utils.numerics.rows import row_size, row_views


def _autograd_step(derivs):
    """The activation step by autograd through s, s' and s'': a = s(z), grad a = s' grad z and
    Lap a = s'' |grad z|^2 + s' Lap z (lz None: Lap z = 0, the first layer)."""
    def step(z, gz, lz):
        s, s1, s2 = derivs(z)
        sq = (gz * gz).sum(2)
        return s, s1.unsqueeze(2) * gz, s2 * sq if lz is None else s2 * sq + s1 * lz
    return step


def _activation(name: str, omega0: float = SIREN_OMEGA0):
    """One activation (SIREN: sin(omega0 z)): s; s with its first and second derivatives (and, with
    ``third``, a function giving the third, for ``_ActivationStep``'s backward); its step by autograd.

    tanh and relu have steps of their own, shorter than the general form; relu has no ``derivs``.
    """
    if name == "tanh":
        def derivs(z, third=False):
            t = torch.tanh(z)
            d1 = 1 - t * t
            out = t, d1, -2 * t * d1
            return out + ((lambda: -2 * d1 * (1 - 3 * t * t)),) if third else out

        def step(z, gz, lz):  # s'' = -2 s s': Lap a = s' (Lap z - 2 s |grad z|^2), 3 passes instead of 5
            t = torch.tanh(z)
            d1 = 1 - t * t
            sq = (gz * gz).sum(2)
            return t, d1.unsqueeze(2) * gz, d1 * (-2 * t * sq if lz is None else torch.addcmul(lz, t, sq, value=-2))
        return torch.tanh, derivs, step
    if name == "relu":
        def step(z, gz, lz):  # piecewise linear: s'' = 0
            d1 = (z > 0).to(z.dtype)
            return torch.relu(z), d1.unsqueeze(2) * gz, torch.zeros_like(z) if lz is None else d1 * lz
        return torch.relu, None, step
    if name == "silu":
        def derivs(z, third=False):
            s = torch.sigmoid(z)
            p, q = s * (1 - s), 1 - 2 * s                  # sigmoid' and sigmoid''/sigmoid'
            out = z * s, s * (1 + z * (1 - s)), p * (2 + z * q)
            return out + ((lambda: p * (q * (3 + z * q) - 2 * z * p)),) if third else out
        return torch.nn.functional.silu, derivs, _autograd_step(derivs)
    if name == "sine":
        def derivs(z, third=False):
            sz, cz = torch.sin(omega0 * z), torch.cos(omega0 * z)
            out = sz, omega0 * cz, -omega0 * omega0 * sz
            return out + ((lambda: -omega0 ** 3 * cz),) if third else out
        return lambda z: torch.sin(omega0 * z), derivs, _autograd_step(derivs)
    raise ValueError(f"unknown activation {name!r}")


class _ActivationStep(torch.autograd.Function):
    """a = s(z) with its gradient and Laplacian in x, and a backward written out (silu and sine).

    Forward: a = s(z), grad a = s1 grad z, Lap a = s2 |grad z|^2 + s1 Lap z (sk: the k-th derivative
    of s at z). Backward, for output gradients (A, G, L): dz = A s1 + (G . grad z) s2 +
    L (s3 |grad z|^2 + s2 Lap z), d grad z = G s1 + 2 L s2 grad z, d Lap z = L s1. Autograd through
    the forward's expressions recomputes sin/cos in backward and runs more elementwise passes: a whole
    2D PINN evaluation (depth 6) takes 1.07-1.2x this one's time for silu and 1.1-1.4x for sine;
    for tanh it takes 0.8x, so tanh keeps autograd (bench/bench.py part 8). The first layer's
    grad z is W itself, (B, w, d, 1).
    """

    @staticmethod
    def forward(ctx, z, gz, lz, derivs):
        s, s1, s2, s3 = derivs(z, third=True)
        sq = (gz * gz).sum(2)
        g = s1.unsqueeze(2) * gz
        lap = s2 * sq if lz is None else torch.addcmul(s2 * sq, s1, lz)
        ctx.third, ctx.first = s3, lz is None
        ctx.save_for_backward(s1, s2, gz, sq, s1 if lz is None else lz)
        return s, g, lap

    @staticmethod
    def backward(ctx, A, G, L):
        s1, s2, gz, sq, lz = ctx.saved_tensors
        inner = ctx.third() * sq
        if not ctx.first:
            inner.addcmul_(s2, lz)
        dz = (A * s1).addcmul_((G * gz).sum(2), s2).addcmul_(L, inner)
        twice = (L * s2).mul_(2).unsqueeze(2)
        dgz = s1.unsqueeze(2) * G
        if gz.shape[-1] == 1:  # the first layer's W, broadcast over the points
            dgz = dgz.addcmul_(twice, gz).sum(-1, keepdim=True)
        else:
            dgz.addcmul_(twice, gz)
        return dz, dgz, None if ctx.first else L * s1, None


# activations whose step goes through _ActivationStep; the others' by autograd (bench/bench.py part 8)
WRITTEN_BACKWARD = {"silu", "sine"}


def _matmul(W, h):
    """W h per member: W (B, out, in), h (B, in, n) -> (B, out, n), points last.

    Points last makes torch's gradient of W a product of two point-last matrices, which rounds
    the same for a member whatever its position in the batch (measured; points first, or a
    transposed copy of either, did not), so a member's numbers never depend on its ensemble.
    A single input or output is a broadcast product (and a sum): torch's batched matrix-vector
    products round one member differently from several (measured).
    """
    if W.shape[1] == 1:
        return (W.transpose(1, 2) * h).sum(1, keepdim=True)
    if W.shape[2] == 1:
        return W * h
    return torch.bmm(W, h)


def _linear(W, h, b):
    return _matmul(W, h) + b.unsqueeze(-1)


class StackedNet:
    """B MLPs (``activation`` tanh / relu / silu) or SIRENs (``activation="sine"``) of one shape.

    Layers: ``depth`` linear maps n_in -> width -> ... -> width -> 1, the activation between them.
    Row layout of X: each layer's weight (out, in) then bias (out,), as ``module.parameters()``.
    """

    def __init__(self, family: str, n_in: int, width: int, depth: int, activation: str = "sine"):
        self.family, self.n_in, self.width, self.depth = family, n_in, width, depth
        self.activation = "sine" if family == "siren" else activation
        self.act, self.act_derivs, self.act_step = _activation(self.activation)
        dims = [n_in] + [width] * (depth - 1) + [1]
        self.shapes = [s for i in range(depth) for s in ((dims[i + 1], dims[i]), (dims[i + 1],))]
        self.n_params = sum(math.prod(s) for s in self.shapes)
        self.row_size = row_size(self.n_params)

    def module(self, row=None):
        """The single torch module of this shape; with ``row``, holding those parameters in its dtype."""
        m = (SIREN(self.n_in, self.width, self.depth) if self.family == "siren"
             else MLP(self.n_in, self.width, self.depth, self.activation))
        if row is not None:
            m = m.to(row.dtype)
            with torch.no_grad():
                for p, v in zip(m.parameters(), self._views(row[None])):
                    p.copy_(v[0])
        return m

    def init(self, seeds, device="cpu", dtype=None):
        """(B, row_size): member b initialized as the module built in ``dtype`` (default: torch's default
        dtype) after torch.manual_seed(seeds[b])."""
        dtype = dtype or torch.get_default_dtype()
        X = torch.zeros(len(seeds), self.row_size, dtype=dtype)
        for b, seed in enumerate(seeds):
            with torch.random.fork_rng(devices=[]), default_dtype(dtype):
                torch.manual_seed(seed)
                m = self.module()
            X[b, :self.n_params] = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
        return X.to(device)

    def _views(self, X):
        """Each layer's weights and biases, (B, out, in) and (B, out), viewing X."""
        return row_views(X, self.shapes)

    def forward(self, X, x, members=None):
        """Outputs (B, N, 1) of the members at their inputs x (B, N, n_in)."""
        views = self._views(X)
        n = x.shape[1]
        h = pad_points(x.transpose(1, 2), 2)                   # (B, n_in, N'): points last, whole lanes
        for l in range(self.depth):
            h = _linear(views[2 * l], h, views[2 * l + 1])
            if l < self.depth - 1:
                h = self.act(h)
        return h[:, :, :n].transpose(1, 2)

    def derivatives(self, X, x, members=None):
        """Value (B, N, 1), gradient in x (B, N, n_in) and Laplacian in x (B, N, 1), forward-mode.

        Value (B, w, N), gradient (B, w, d, N) and Laplacian (B, w, N) are separate tensors: one
        tensor sliced into the three cost more in the backward pass (every slice's gradient is a
        zero-filled copy of the whole) than separate matmuls (measured 1.6x).
        """
        views = self._views(X)
        B, n, d = x.shape
        h = pad_points(x.transpose(1, 2), 2)                   # (B, d, N'): points last, whole lanes
        N = h.shape[2]
        W, b = views[0], views[1]
        v = _linear(W, h, b)                                     # first layer: grad x = identity, Lap x = 0
        gz, lz = W.unsqueeze(-1), None                           # (B, w, d, 1): the same at every point
        for l in range(1, self.depth):  # activation of layer l-1's output, then linear layer l
            if self.activation in WRITTEN_BACKWARD:
                s, g, lap = _ActivationStep.apply(v, gz, lz, self.act_derivs)
            else:
                s, g, lap = self.act_step(v, gz, lz)
            W, b = views[2 * l], views[2 * l + 1]
            v = _linear(W, s, b)
            gz = _matmul(W, g.reshape(B, -1, d * N)).view(B, -1, d, N)
            lz = _matmul(W, lap)
        return v[:, :, :n].transpose(1, 2), gz[:, 0, :, :n].transpose(1, 2), lz[:, :, :n].transpose(1, 2)

    def astype(self, dtype):
        """The same stack for parameters of another dtype (it holds no tensors of its own)."""
        return self

    def count_params(self, X=None) -> int:
        return self.n_params
