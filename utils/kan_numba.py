"""A pykan KAN's regression loss and its gradient, compiled (numba), for training on the CPU.

Why: a [1,5,1] KAN on 1000 points is about 20,000 multiply-adds per evaluation, and LBFGS
evaluates it about 22 times per step. In torch that is about 100 tensor operations at 4-10 us
each on this machine (measured: 1.0-1.3 ms per loss and gradient with a hand-written backward,
1.7 ms with autograd); here it is about 0.3 ms. The loss is a mean of per-point terms, so the
whole computation is one compiled loop over the points, each running its own forward and
backward and adding to the parameter gradients:

- the first layer's inputs are the data, so its knot intervals and 4 nonzero B-spline bases per
  point are computed once (``kan_fast.local_basis``);
- in later layers each input finds its knot interval by walking from the previous point's
  (points are sorted by their first coordinate, so the walk is short) and evaluates its bases
  with the Cox-de Boor triangle.

Everything is float64. Only cubic splines (pykan's default, and this pipeline's) are compiled;
``supports(model)`` says whether a model qualifies.

``MSEObjective(model, x, y)`` is what the optimizer sees: ``fun(theta) -> (loss, grad)`` over
``kan_fast.trainable_params(model)`` flattened (a ``lbfgs.ParamVector``: ``x0()``, ``set``).
It copies the model's grids, masks and affine maps when built: build a new one after a grid
update.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from utils.kan_fast import (PARAM_NAMES, check_fast_path, local_basis, model_input, node_affine, padded_knots,
                            trainable_params)
from utils.lbfgs import ParamVector


@numba.njit(cache=True, inline="always")
def _cubic_bases(x, l, i, knots, m, N, dN):
    """N[l, i, :], dN[l, i, :]: the 4 nonzero cubic bases at x in interval m, and their x-derivatives.

    The Cox-de Boor triangle of ``kan_fast.local_basis`` for k = 3, unrolled into scalars: with
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


def supports(model) -> bool:
    return all(layer.k == 3 for layer in model.act_fun)


def _numpy(t):
    return t.detach().double().cpu().numpy()


class MSEObjective(ParamVector):
    """mean((model(x) - y)^2) and its gradient over the flat trainable parameters, on the CPU."""

    def __init__(self, model, x, y):
        check_fast_path(model)
        if x.device.type != "cpu":
            raise ValueError("kan_numba.MSEObjective runs on the CPU; use autograd on other devices")
        if not supports(model):
            raise ValueError("kan_numba.MSEObjective: cubic splines only (pykan's default k=3)")
        super().__init__(trainable_params(model))
        x = model_input(model, x).detach()
        order = torch.argsort(x[:, 0])  # the loss is a mean: the order is free, sorted walks are short
        x, self.y = x[order], _numpy(y[order])
        layers = list(model.act_fun)
        # the first layer's inputs are the data: intervals, bases and silu once
        N0, first = local_basis(x, layers[0].grid, 3)                     # (in, 4, batch), (in, batch)
        self.M0, self.N0 = first.T.numpy().copy(), _numpy(N0.permute(2, 0, 1)).copy()
        self.silu0 = _numpy(torch.nn.functional.silu(x))
        # every layer's arrays, padded to the widest layer
        self.widths = np.array([layers[0].mask.shape[0]] + [layer.mask.shape[1] for layer in layers])
        self.n_grid = np.array([layer.grid.shape[1] for layer in layers])
        n, w, n_grid = len(layers), self.widths.max(), self.n_grid.max()
        self.grids, self.knots = np.zeros((n, w, n_grid)), np.zeros((n, w, n_grid + 6))
        # every layer's coef, scale_base, scale_sp in one buffer (and their gradients in another);
        # G+3 coefficients with 3 zeros on each side
        shapes = {name: (n, w, w) + ((n_grid + 2,) if name == "coef" else ()) for name in PARAM_NAMES}
        self.buf = np.zeros(sum(map(math.prod, shapes.values())))
        self.values = dict(zip(PARAM_NAMES, _views(self.buf, shapes.values())))
        self.mask, self.a, self.b = np.zeros((n, w, w)), np.zeros((n, w)), np.zeros((n, w))
        where = dict(zip(PARAM_NAMES, _views(np.arange(len(self.buf)), shapes.values())))
        trainable = []  # positions in buf of the optimizer's vector
        for l, layer in enumerate(layers):
            n_in, n_out = layer.mask.shape
            grid = _numpy(layer.grid)
            self.grids[l, :n_in, :grid.shape[1]] = grid
            self.knots[l, :n_in, :grid.shape[1] + 6] = _numpy(padded_knots(layer.grid, 3))
            self.mask[l, :n_in, :n_out] = _numpy(layer.mask)
            self.a[l, :n_out], self.b[l, :n_out] = (_numpy(v) for v in node_affine(model, l))
            for name in PARAM_NAMES:
                p = getattr(layer, name)
                index = (l, slice(0, n_in), slice(0, n_out)) + ((slice(3, 3 + p.shape[2]),) if name == "coef" else ())
                self.values[name][index] = _numpy(p)
                if p.requires_grad:
                    trainable.append(where[name][index].ravel())
        self.trainable = np.concatenate(trainable)
        self.gbuf = np.zeros_like(self.buf)
        self.grads = dict(zip(PARAM_NAMES, _views(self.gbuf, shapes.values())))

    def __call__(self, theta):
        self.buf[self.trainable] = theta
        v, g = self.values, self.grads
        loss = _mse_and_grad(self.y, self.M0, self.N0, self.silu0, self.widths, self.n_grid, self.grids,
                             self.knots, v["coef"], v["scale_base"], v["scale_sp"], self.mask, self.a, self.b,
                             g["coef"], g["scale_base"], g["scale_sp"])
        return loss, self.gbuf[self.trainable]
