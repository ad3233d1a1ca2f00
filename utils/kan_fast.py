"""pykan's KAN forward without pykan's overheads, computed from the model's own parameters.

pykan evaluates all G+k B-spline bases at every point through a recursion over dense tensors and
records activations for plotting on every call; for these tiny models the cost is the number of
tensor operations, not arithmetic. Here:

- each point finds its knot interval and evaluates only the k+1 nonzero bases (the Cox-de Boor
  triangle, vectorized over those k+1), then gathers the k+1 matching coefficients;
- a hand-written backward (``_KANLayerFn``) replaces autograd through the triangle: the gradient
  needs only the bases, their x-derivatives and a scatter into the coefficients;
- a layer whose input is fixed data (the first layer during training) reuses its bases until its
  grid changes.

The model stays a pykan ``KAN``: training updates its parameters in place, and ``plot``,
``prune``, ``refine`` and ``auto_symbolic`` keep working on it. ``forward(..., create_graph=True)``
uses plain autograd instead, for losses that differentiate the network in x twice (PDE residuals).
Only the numerical branch is evaluated; ``check_fast_path`` refuses models that use anything else.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def check_fast_path(model) -> None:
    if any(w[1] != 0 for w in model.width if isinstance(w, list)):
        raise ValueError("fast KAN forward: multiplication nodes are not supported")
    if model.symbolic_enabled and any(bool(s.mask.any()) for s in model.symbolic_fun):
        raise ValueError("fast KAN forward: symbolic functions are active; use model(x)")
    if any(not isinstance(layer.base_fun, torch.nn.SiLU) for layer in model.act_fun):
        raise ValueError("fast KAN forward: only the silu base function is supported")


def local_basis(x, grid, k: int, deriv: bool = False):
    """The k+1 nonzero B-spline bases at each point, as k+1 contiguous (in, batch) tensors.

    x (batch, in), grid (in, G+2k+1) -> (bases, their x-derivatives or None, index of the first
    basis). pykan's bases near the ends of its knot vector use only the knots it has; padding the
    knots by k on each side lets every interval use the same formula and gives the same values
    for the bases that exist (the padded ones get zero coefficients). Points outside the grid get
    no spline, as in pykan. Bases are kept as separate tensors: elementwise ops on a trailing
    dimension of size k+1 take a slow strided path in torch.
    """
    xt = x.t().contiguous()
    n_int = grid.shape[1] - 1
    m = torch.searchsorted(grid.contiguous(), xt.detach(), right=True) - 1
    inside = ((m >= 0) & (m < n_int)).to(x.dtype)
    m = m.clamp(0, n_int - 1)
    if k == 0:  # piecewise constant: the indicator of the interval
        return [inside], [torch.zeros_like(inside)] if deriv else None, m
    h_lo, h_hi = grid[:, 1:2] - grid[:, :1], grid[:, -1:] - grid[:, -2:-1]
    steps = torch.arange(1, k + 1, device=x.device, dtype=grid.dtype)
    knots = torch.cat([grid[:, :1] - h_lo * steps.flip(0), grid, grid[:, -1:] + h_hi * steps], 1)
    # knots t[m + o] for o = 1-k..k, m counted in the padded knots (m + k)
    offs = torch.arange(1, 2 * k + 1, device=x.device).view(1, -1, 1)
    idx = (m.unsqueeze(1) + offs).reshape(m.shape[0], -1)
    t = torch.gather(knots, 1, idx).view(m.shape[0], 2 * k, -1)
    left_all = xt.unsqueeze(1) - t                    # x - t[m+1-r] at position k-r
    right_all = t - xt.unsqueeze(1)                   # t[m+r] - x at position k-1+r
    left = [None] + [left_all[:, k - r] for r in range(1, k + 1)]
    right = [None] + [right_all[:, k - 1 + r] for r in range(1, k + 1)]
    N = [inside]
    temps = []
    for r in range(1, k + 1):
        saved, nxt, temps = None, [], []
        for j in range(r):
            temp = N[j] / (right[j + 1] + left[r - j])  # basis value over its knot span
            temps.append(temp)
            term = right[j + 1] * temp
            nxt.append(term if saved is None else saved + term)
            saved = left[r - j] * temp
        nxt.append(saved)
        N = nxt
    dN = None
    if deriv:  # dB_{j,k} = k (B_{j,k-1}/span_j - B_{j+1,k-1}/span_{j+1})
        dN = [k * temps[0].neg()] + [k * (temps[j - 1] - temps[j]) for j in range(1, k)] + [k * temps[k - 1]]
    return N, dN, m


def _gather_cols(C, first, j):
    """C[i, o, first[i, b] + j] for every edge and point: (in, out, batch)."""
    return torch.gather(C, 2, (first + j).unsqueeze(1).expand(-1, C.shape[1], -1))


class _KANLayerFn(torch.autograd.Function):
    """y[b,o] = sum_i mask[i,o] (scale_base[i,o] silu(x[b,i]) + scale_sp[i,o] spline_io(x[b,i]))."""

    @staticmethod
    def forward(ctx, x, coef, scale_base, scale_sp, mask, basis):
        N, dN, first = basis
        k = len(N) - 1
        C = F.pad(coef, (k, k))                                        # (in, out, G+3k)
        g = [_gather_cols(C, first, j) for j in range(k + 1)]          # (in, out, batch) each
        s = N[0].unsqueeze(1) * g[0]
        for j in range(1, k + 1):
            s = s + N[j].unsqueeze(1) * g[j]
        xt = x.t()
        base = F.silu(xt)                                              # (in, batch)
        mb, ms = mask * scale_base, mask * scale_sp
        y = mb.t() @ base + (ms.unsqueeze(-1) * s).sum(0)               # (out, batch)
        ctx.save_for_backward(xt, base, s, mask, mb, ms, first, *N, *(dN or []), *g)
        ctx.k, ctx.n_cols, ctx.has_dN = k, coef.shape[-1], dN is not None
        return y.t()

    @staticmethod
    def backward(ctx, gy):
        k = ctx.k
        xt, base, s, mask, mb, ms, first, *rest = ctx.saved_tensors
        N, rest = rest[:k + 1], rest[k + 1:]
        dN, g = (rest[:k + 1], rest[k + 1:]) if ctx.has_dN else (None, rest)
        gyt = gy.t()                                                   # (out, batch)
        d_x = d_coef = d_sb = d_sp = None
        gs = ms.unsqueeze(-1) * gyt.unsqueeze(0)                       # (in, out, batch)
        if ctx.needs_input_grad[1]:
            acc = torch.zeros(gs.shape[0], gs.shape[1], ctx.n_cols + 2 * k, dtype=gy.dtype, device=gy.device)
            for j in range(k + 1):
                acc.scatter_add_(2, (first + j).unsqueeze(1).expand_as(gs), N[j].unsqueeze(1) * gs)
            d_coef = acc[:, :, k:k + ctx.n_cols]
        if ctx.needs_input_grad[2]:
            d_sb = mask * (base @ gy)
        if ctx.needs_input_grad[3]:
            d_sp = mask * (s * gyt.unsqueeze(0)).sum(-1)
        if ctx.needs_input_grad[0]:
            if dN is None:
                raise RuntimeError("x-gradient requested but bases were built without derivatives")
            sig = torch.sigmoid(xt)
            ds = dN[0].unsqueeze(1) * g[0]
            for j in range(1, k + 1):
                ds = ds + dN[j].unsqueeze(1) * g[j]
            d_x = (sig * (1 + xt * (1 - sig)) * (mb @ gyt) + (gs * ds).sum(1)).t()
        return d_x, d_coef, d_sb, d_sp, None, None


def _cached_basis(layer, x):
    """Bases of a layer whose input is data: recomputed only when the input or the grid changes."""
    c = getattr(layer, "_fast_basis", None)
    if c is None or c[0] is not x or c[1] != x._version or not torch.equal(c[2], layer.grid):
        with torch.no_grad():
            c = (x, x._version, layer.grid.detach().clone(), local_basis(x, layer.grid, layer.k))
        layer._fast_basis = c
    return c[3]


def layer_forward(x, layer, create_graph: bool = False):
    if create_graph:  # plain autograd through the bases: differentiable any number of times
        N, _, first = local_basis(x, layer.grid, layer.k)
        C = F.pad(layer.coef, (layer.k, layer.k))
        s = sum(N[j].unsqueeze(1) * _gather_cols(C, first, j) for j in range(layer.k + 1))
        y = layer.scale_base * layer.base_fun(x)[:, :, None] + layer.scale_sp * s.permute(2, 0, 1)
        return (layer.mask * y).sum(dim=1)
    if x.requires_grad:
        with torch.no_grad():
            basis = local_basis(x, layer.grid, layer.k, deriv=True)
    else:
        basis = _cached_basis(layer, x)
    return _KANLayerFn.apply(x, layer.coef, layer.scale_base, layer.scale_sp, layer.mask, basis)


def forward(model, x, create_graph: bool = False):
    """The numerical output of pykan's ``model(x)``.

    Differentiable once in parameters and x; with ``create_graph=True`` differentiable any number
    of times (slower), for losses that contain derivatives of the network.
    """
    if not torch.equal(model.input_id, torch.arange(x.shape[1])):
        x = x[:, model.input_id.long()]  # pruned inputs; identity otherwise (keeps the basis cache)
    for l, layer in enumerate(model.act_fun):
        x = layer_forward(x, layer, create_graph)
        x = model.subnode_scale[l] * x + model.subnode_bias[l]
        x = model.node_scale[l] * x + model.node_bias[l]
    return x


def trainable_params(model) -> list:
    """The parameters that shape the output (not the inactive symbolic branch's)."""
    return [p for layer in model.act_fun for p in (layer.coef, layer.scale_base, layer.scale_sp)
            if p.requires_grad]
