"""pykan's KAN forward without pykan's overheads, computed from the model's own parameters.

pykan evaluates all G+k B-spline bases at every point through a recursion over dense tensors and
records activations for plotting on every call; for these tiny models the cost is the number of
tensor operations, not arithmetic. Here:

- each point finds its knot interval and evaluates only the k+1 nonzero bases (the Cox-de Boor
  triangle, vectorized over those k+1), then gathers the k+1 matching coefficients;
- ``forward`` is plain autograd over those few operations, so it is differentiable in parameters
  and in x any number of times (PDE residuals need second derivatives); the first layer's bases
  depend on the data and the grid only and are reused;
- ``update_grid`` is pykan's, with this forward supplying each layer's samples.

Regression training on the CPU goes further: ``utils.kan_numba`` computes the loss and its
gradient as compiled loops.

The model stays a pykan ``KAN``: training writes its parameters back in place, and ``plot``,
``prune``, ``refine`` and ``auto_symbolic`` keep working on it. Only the numerical branch is
evaluated; ``check_fast_path`` refuses models that use anything else.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PARAM_NAMES = ("coef", "scale_base", "scale_sp")


def check_fast_path(model) -> None:
    if any(w[1] != 0 for w in model.width if isinstance(w, list)):
        raise ValueError("fast KAN forward: multiplication nodes are not supported")
    if model.symbolic_enabled and any(bool(s.mask.any()) for s in model.symbolic_fun):
        raise ValueError("fast KAN forward: symbolic functions are active; use model(x)")
    if any(not isinstance(layer.base_fun, torch.nn.SiLU) for layer in model.act_fun):
        raise ValueError("fast KAN forward: only the silu base function is supported")


def padded_knots(grid, k: int):
    """The grid extended by k more knots at each end, spaced as its end intervals."""
    h_lo, h_hi = grid[:, 1:2] - grid[:, :1], grid[:, -1:] - grid[:, -2:-1]
    steps = torch.arange(1, k + 1, device=grid.device, dtype=grid.dtype)
    return torch.cat([grid[:, :1] - h_lo * steps.flip(0), grid, grid[:, -1:] + h_hi * steps], 1)


def local_basis(x, grid, k: int):
    """The k+1 nonzero B-spline bases at each point: (bases, index of the first).

    x (batch, in), grid (in, G+2k+1) -> bases (in, k+1, batch); basis j at a point is pykan's
    basis number first + j - k. pykan's bases near the ends of its knot vector use only the knots
    it has; padding the knots by k on each side lets every interval use the same formula and gives
    the same values for the bases that exist (the padded ones get zero coefficients). Points
    outside the grid get no spline, as in pykan.
    """
    xt = x.t().contiguous().unsqueeze(1)                                # (in, 1, batch)
    n_int = grid.shape[1] - 1
    m = torch.searchsorted(grid.contiguous(), xt[:, 0].detach(), right=True) - 1
    N = ((m >= 0) & (m < n_int)).to(x.dtype).unsqueeze(1)              # degree 0: the interval's indicator
    m = m.clamp(0, n_int - 1)
    if k == 0:
        return N, m
    knots = padded_knots(grid, k)
    # T[:, q] = knot m+1-k+q for q = 0..2k-1 (m counted in the unpadded grid)
    idx = m.unsqueeze(1) + torch.arange(1, 2 * k + 1, device=x.device).view(1, -1, 1)
    T = torch.gather(knots, 1, idx.flatten(1)).view(idx.shape)
    left, right = xt - T[:, :k], T[:, k:] - xt   # x - t[m+1-k+i] (i = 0..k-1); t[m+r] - x (r = 1..k)
    for r in range(1, k + 1):  # degree r from degree r-1, all r+1 bases at once
        R, L = right[:, :r], left[:, k - r:]
        temp = N / (R + L)
        N = F.pad(R * temp, (0, 0, 0, 1)) + F.pad(L * temp, (0, 0, 1, 0))
    return N, m


def dense_basis(x, grid, k: int):
    """All G+k bases at each point, zeros included: (in, batch, G+k)."""
    N, first = local_basis(x, grid, k)
    n_coef = grid.shape[1] - k - 1
    cols = first.unsqueeze(-1) + torch.arange(k + 1, device=first.device)  # in k-padded columns
    dense = N.new_zeros(first.shape[0], first.shape[1], n_coef + 2 * k)
    return dense.scatter(2, cols, N.transpose(1, 2))[:, :, k:k + n_coef]


def _layer_values(x, layer, basis):
    """pykan's numerical layer output (batch, out) from the bases at x."""
    N, first = basis
    k, (n_in, n_out, _) = layer.k, layer.coef.shape
    cols = first.unsqueeze(1) + torch.arange(k + 1, device=first.device).view(1, -1, 1)   # (in, k+1, batch)
    C = torch.gather(F.pad(layer.coef, (k, k)), 2, cols.flatten(1).unsqueeze(1).expand(-1, n_out, -1))
    s = (C.view(n_in, n_out, k + 1, -1) * N.unsqueeze(1)).sum(2)       # (in, out, batch) spline values
    y = layer.scale_base * layer.base_fun(x)[:, :, None] + layer.scale_sp * s.permute(2, 0, 1)
    return (layer.mask * y).sum(dim=1)


def _data_basis(layer, x):
    """Bases of the model's input: reused while the input and the grid are unchanged."""
    c = getattr(layer, "_fast_basis", None)
    if c is None or c[0] is not x or c[1] != x._version or not torch.equal(c[2], layer.grid):
        with torch.no_grad():
            c = (x, x._version, layer.grid.detach().clone(), local_basis(x, layer.grid, layer.k))
        layer._fast_basis = c
    return c[3]


def model_input(model, x):
    if torch.equal(model.input_id, torch.arange(x.shape[1])):
        return x  # the same tensor, so the basis cache sees the same data
    return x[:, model.input_id.long()]  # a pruned model's remaining inputs


def node_affine(model, l):
    """pykan's subnode and node affine maps after layer l, folded into one: x -> a x + b."""
    a = model.node_scale[l] * model.subnode_scale[l]
    return a, model.node_scale[l] * model.subnode_bias[l] + model.node_bias[l]


def layer_output(model, l, x):
    """Layer l of pykan's forward, with the node maps that follow it: the next layer's input."""
    layer = model.act_fun[l]
    basis = _data_basis(layer, x) if l == 0 and not x.requires_grad else local_basis(x, layer.grid, layer.k)
    a, b = node_affine(model, l)
    return a * _layer_values(x, layer, basis) + b


def forward(model, x):
    """The numerical output of pykan's ``model(x)``, differentiable any number of times."""
    x = model_input(model, x)
    for l in range(len(model.act_fun)):
        x = layer_output(model, l, x)
    return x


@torch.no_grad()
def update_grid(model, x):
    """pykan's ``model.update_grid(x)``: each layer's grid adapted to the samples that reach it.

    pykan runs its full forward, recording every activation, once per layer to get those samples
    (most of the cost at small G); here the fast forward gives them, and each layer's own
    ``update_grid_from_samples`` (pykan's grid and least-squares code) does the rest, in pykan's
    order: layer l's samples come from the layers before it, already updated.
    """
    x = model_input(model, x)
    for l, layer in enumerate(model.act_fun):
        layer.update_grid_from_samples(x)
        x = layer_output(model, l, x)


def trainable_params(model) -> list:
    """The parameters that shape the output (not the inactive symbolic branch's)."""
    return [getattr(layer, n) for layer in model.act_fun for n in PARAM_NAMES if getattr(layer, n).requires_grad]
