"""pykan KANs' regression loss and its gradient, compiled (numba), for training on the CPU.

Why: a [1,5,1] KAN on 1000 points is about 20,000 multiply-adds per evaluation, and LBFGS
evaluates it about 22 times per step. In torch that is about 100 tensor operations at 4-10 us
each on this machine (measured: 1.0-1.3 ms per loss and gradient with a hand-written backward,
1.7 ms with autograd); here it is about 0.3 ms. The loss is a mean of per-point terms, so the
whole computation is one compiled loop over the points, each running its own forward and
backward and adding to the parameter gradients:

- the first layer's inputs are the data, so its knot intervals and 4 nonzero B-spline bases per
  point are computed once (``kan_stack.local_bases``);
- in later layers each input finds its knot interval by walking from the previous point's
  (points are sorted by their first coordinate, so the walk is short) and evaluates its bases
  with the Cox-de Boor triangle.

Everything is float64. Only cubic splines (pykan's default, and this pipeline's) are compiled;
``supports(stacked)`` says whether a ``kan_stack.StackedKAN`` qualifies.

``StackedMSE(stacked, x, y)`` is what the optimizer sees for an ensemble of KANs: the members run
one after another through the kernel (measured: faster on a CPU core than the batched torch
forward and autograd of ``kan_stack``, which is what other devices and the PDE losses use).
It copies the members' grids, masks and affine maps when built: build a new one after a grid
update.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from utils.engine.kan_stack import PARAM_NAMES
from utils.numerics.splines import local_bases, padded_knots


@numba.njit(cache=True, inline="always")
def _cubic_bases(x, l, i, knots, m, N, dN):
    """N[l, i, :], dN[l, i, :]: the 4 nonzero cubic bases at x in interval m, and their x-derivatives.

    The Cox-de Boor triangle of ``kan_stack.local_bases`` for k = 3, unrolled into scalars: with
    loops over small arrays it ran 5-10x slower (memory round trips between the levels).
    (Inlined, and indices rather than views: a call that passes arrays costs reference counting.)
    """
    mp = m + 3  # in the padded knots
    l1, l2, l3 = x - knots[l, i, mp], x - knots[l, i, mp - 1], x - knots[l, i, mp - 2]
    r1, r2, r3 = knots[l, i, mp + 1] - x, knots[l, i, mp + 2] - x, knots[l, i, mp + 3] - x
    t0 = 1.0 / (r1 + l1)                                          # degree 1
    n0, n1 = r1 * t0, l1 * t0
    t0, t1 = n0 / (r1 + l2), n1 / (r2 + l1)                       # degree 2
    n0, n1, n2 = r1 * t0, l2 * t0 + r2 * t1, l1 * t1
    t0, t1, t2 = n0 / (r1 + l3), n1 / (r2 + l2), n2 / (r3 + l1)   # degree 3
    N[l, i, 0], N[l, i, 1], N[l, i, 2], N[l, i, 3] = r1 * t0, l3 * t0 + r2 * t1, l2 * t1 + r3 * t2, l1 * t2
    # dB_j = 3 (B_j,2 / span_j - B_j+1,2 / span_j+1)
    dN[l, i, 0], dN[l, i, 1], dN[l, i, 2], dN[l, i, 3] = -3.0 * t0, 3.0 * (t0 - t1), 3.0 * (t1 - t2), 3.0 * t2


@numba.njit(cache=True)
def _mse_and_grad(Y, M0, N0, silu0, widths, n_grid, grids, knots, coef, sb, sp, mask, a, b, g_coef, g_sb, g_sp):
    """The loss; its gradients are written into g_*.

    Layer l maps widths[l] -> widths[l+1]; arrays are padded to the widest layer: grids
    (l, in, :n_grid[l]), knots = grids padded by 3 knots; coef (l, in, out, G+3) with 3 zeros on
    each side, so that every interval sums 4 bases; sb, sp, mask (l, in, out); a, b (l, out): the
    affine map after the layer. The first layer's inputs are the data: their intervals M0, bases N0
    and silu0 are given (points, inputs[, 4]). Y: the targets (points, outputs).
    """
    n_batch, n_layers = Y.shape[0], len(widths) - 1
    w = widths.max()
    h = np.zeros((n_layers + 1, w))
    g, g_next = np.zeros(w), np.zeros(w)
    N, dN = np.zeros((n_layers, w, 4)), np.zeros((n_layers, w, 4))
    M = np.zeros((n_layers, w), np.int64)
    pos = np.zeros((n_layers, w), np.int64)   # number of grid points <= x, walked from the previous point
    silu, dsilu, S = np.zeros((n_layers, w)), np.zeros((n_layers, w)), np.zeros((n_layers, w, w))
    g_coef[:] = 0.0
    g_sb[:] = 0.0
    g_sp[:] = 0.0
    loss = 0.0
    n_terms = n_batch * widths[n_layers]
    for p in range(n_batch):
        for l in range(n_layers):  # forward
            n_in, n_out = widths[l], widths[l + 1]
            for o in range(n_out):
                h[l + 1, o] = 0.0
            for i in range(n_in):
                if l == 0:  # the data: intervals, bases and silu are given
                    m, silu[0, i] = M0[p, i], silu0[p, i]
                    for j in range(4):
                        N[0, i, j] = N0[p, i, j]
                else:
                    x = h[l, i]
                    q = pos[l, i]
                    while q < n_grid[l] and grids[l, i, q] <= x:
                        q += 1
                    while q > 0 and grids[l, i, q - 1] > x:
                        q -= 1
                    pos[l, i] = q
                    sig = 1.0 / (1.0 + math.exp(-x))
                    silu[l, i], dsilu[l, i] = x * sig, sig * (1.0 + x * (1.0 - sig))
                    m = q - 1
                    if 0 < q < n_grid[l]:
                        _cubic_bases(x, l, i, knots, m, N, dN)
                    else:  # outside the grid: no spline, as in pykan
                        m = 0
                        for j in range(4):
                            N[l, i, j] = dN[l, i, j] = 0.0
                M[l, i] = m
                for o in range(n_out):
                    s = (N[l, i, 0] * coef[l, i, o, m] + N[l, i, 1] * coef[l, i, o, m + 1]
                         + N[l, i, 2] * coef[l, i, o, m + 2] + N[l, i, 3] * coef[l, i, o, m + 3])
                    S[l, i, o] = s
                    h[l + 1, o] += mask[l, i, o] * (sb[l, i, o] * silu[l, i] + sp[l, i, o] * s)
            for o in range(n_out):
                h[l + 1, o] = a[l, o] * h[l + 1, o] + b[l, o]
        for o in range(widths[n_layers]):
            r = h[n_layers, o] - Y[p, o]
            loss += r * r
            g[o] = 2.0 * r / n_terms
        for l in range(n_layers - 1, -1, -1):  # backward
            n_in, n_out = widths[l], widths[l + 1]
            for i in range(n_in):
                m, gh = M[l, i], 0.0
                for o in range(n_out):
                    gm = a[l, o] * g[o] * mask[l, i, o]
                    gs = gm * sp[l, i, o]
                    g_sb[l, i, o] += gm * silu[l, i]
                    g_sp[l, i, o] += gm * S[l, i, o]
                    for j in range(4):
                        g_coef[l, i, o, m + j] += N[l, i, j] * gs
                    if l > 0:  # the data need no gradient
                        ds = (dN[l, i, 0] * coef[l, i, o, m] + dN[l, i, 1] * coef[l, i, o, m + 1]
                              + dN[l, i, 2] * coef[l, i, o, m + 2] + dN[l, i, 3] * coef[l, i, o, m + 3])
                        gh += gm * sb[l, i, o] * dsilu[l, i] + gs * ds
                g_next[i] = gh
            for i in range(n_in):
                g[i] = g_next[i]
    return loss / n_terms


def _views(flat, shapes):
    """Consecutive arrays of the given shapes, viewing one flat buffer."""
    out, at = [], 0
    for shape in shapes:
        out.append(flat[at:at + math.prod(shape)].reshape(shape))
        at += math.prod(shape)
    return out


def supports(stacked) -> bool:
    return stacked.k == 3


def _numpy(t):
    return t.detach().double().cpu().numpy()


class _Member:
    """One member's arrays for the kernel: its data (sorted), the first layer's bases, grids, masks, maps.

    Every layer's arrays are padded to the widest layer; the parameters live in one buffer (and
    their gradients in another) with G+3 coefficients and 3 zeros on each side of them, so every
    interval sums 4 bases.
    """

    def __init__(self, stacked, b, x, y):
        order = torch.argsort(x[:, 0])  # the loss is a mean: the order is free, sorted walks are short
        x, self.y = x[order].detach(), _numpy(y[order])
        L = len(stacked.width) - 1
        (N0,), first = local_bases(x.t().double().contiguous(), stacked.grids[0][b].double(), 3)  # in float64
        self.M0, self.N0 = first.T.cpu().numpy().copy(), _numpy(N0.permute(2, 0, 1)).copy()
        self.silu0 = _numpy(torch.nn.functional.silu(x.double()))
        self.widths = np.array(stacked.width)
        self.n_grid = np.array([g.shape[2] for g in stacked.grids])
        w, n_grid = self.widths.max(), self.n_grid.max()
        self.grids, self.knots = np.zeros((L, w, n_grid)), np.zeros((L, w, n_grid + 6))
        self.mask, self.a, self.b = np.zeros((L, w, w)), np.zeros((L, w)), np.zeros((L, w))
        for l in range(L):
            n_in, n_out = stacked.width[l], stacked.width[l + 1]
            grid = stacked.grids[l][b]
            self.grids[l, :n_in, :grid.shape[1]] = _numpy(grid)
            self.knots[l, :n_in, :grid.shape[1] + 6] = _numpy(padded_knots(grid.double(), 3))
            self.mask[l, :n_in, :n_out] = _numpy(stacked.masks[l][b])
            self.a[l, :n_out], self.b[l, :n_out] = (_numpy(v[b]) for v in stacked.affine[l])


class StackedMSE:
    """mean((model(x) - y)^2) and its gradient for members of a ``StackedKAN``, compiled, on the CPU.

    ``fun(X, idx)`` is the optimizer's objective (``lbfgs.BatchedLBFGS``): member idx[i]'s loss and
    gradient at the parameter row X[i]. It copies the members' grids, masks and maps when built:
    build a new one after a grid update or refinement.
    """

    def __init__(self, stacked, x, y):
        if x.device.type != "cpu":
            raise ValueError("kan_numba.StackedMSE runs on the CPU; use autograd on other devices")
        if not supports(stacked):
            raise ValueError("kan_numba.StackedMSE: cubic splines only (pykan's default k=3)")
        self.members = [_Member(stacked, b, x[b], y[b]) for b in range(stacked.n_members)]
        L, G = len(stacked.width) - 1, stacked.grid_size
        w, n_grid = max(stacked.width), max(g.shape[2] for g in stacked.grids)
        shapes = {name: (L, w, w) + ((n_grid + 2,) if name == "coef" else ()) for name in PARAM_NAMES}
        self.buf = np.zeros(sum(map(math.prod, shapes.values())))
        self.values = dict(zip(PARAM_NAMES, _views(self.buf, shapes.values())))
        self.gbuf = np.zeros_like(self.buf)
        self.grads = dict(zip(PARAM_NAMES, _views(self.gbuf, shapes.values())))
        where = dict(zip(PARAM_NAMES, _views(np.arange(len(self.buf)), shapes.values())))
        trainable = []  # positions in buf of the row layout of X (kan_stack: coef, scale_base, scale_sp per layer)
        for l in range(L):
            n_in, n_out = stacked.width[l], stacked.width[l + 1]
            for name in PARAM_NAMES:
                index = (l, slice(0, n_in), slice(0, n_out)) + ((slice(3, 3 + G + 3),) if name == "coef" else ())
                trainable.append(where[name][index].ravel())
        self.trainable = np.concatenate(trainable)

    def __call__(self, X, idx):
        """Losses and gradients of members ``idx`` (a long tensor; None: all, in order) at the rows of X."""
        rows = X.detach().to(torch.float64).cpu().numpy()
        losses, grads = np.zeros(len(rows)), np.zeros(rows.shape)
        v, g = self.values, self.grads
        n = len(self.trainable)
        for i, b in enumerate(range(len(rows)) if idx is None else idx.tolist()):
            m = self.members[b]
            self.buf[self.trainable] = rows[i, :n]
            losses[i] = _mse_and_grad(m.y, m.M0, m.N0, m.silu0, m.widths, m.n_grid, m.grids, m.knots, v["coef"],
                                      v["scale_base"], v["scale_sp"], m.mask, m.a, m.b, g["coef"], g["scale_base"],
                                      g["scale_sp"])
            grads[i, :n] = self.gbuf[self.trainable]
        return torch.from_numpy(losses), torch.from_numpy(grads)
