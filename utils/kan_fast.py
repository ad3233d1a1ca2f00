"""pykan's KAN forward without pykan's overheads, computed from the model's own parameters.

pykan evaluates all G+k B-spline bases at every point through a recursion over dense tensors,
and records activations for plotting and regularization on every call. A cubic B-spline has only
k+1 nonzero bases at a point, so here each point finds its knot interval, evaluates those k+1
bases with the Cox-de Boor triangle (de Boor's "BasisFuns"), and gathers the k+1 matching
coefficients. The model stays a pykan ``KAN``: training updates its parameters in place, and
``plot``, ``prune``, ``refine`` and ``auto_symbolic`` keep working on it.

Only the numerical branch is evaluated: ``check_fast_path`` refuses models whose symbolic branch
is active or that use multiplication nodes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def check_fast_path(model) -> None:
    if any(w[1] != 0 for w in model.width if isinstance(w, list)):
        raise ValueError("fast KAN forward: multiplication nodes are not supported")
    if model.symbolic_enabled and any(bool(s.mask.any()) for s in model.symbolic_fun):
        raise ValueError("fast KAN forward: symbolic functions are active; use model(x)")


def _padded(layer):
    """Knots padded by k on each side, coefficients padded with zeros to match.

    pykan's bases near the ends of its (already extended) knot vector use only the knots it has;
    padding lets every interval use the same k+1-basis formula, and the zero coefficients make the
    extra bases contribute nothing, so the result is exactly pykan's spline.
    """
    grid, coef, k = layer.grid, layer.coef, layer.k
    h_lo = (grid[:, 1:2] - grid[:, 0:1]).clamp_min(1e-12)
    h_hi = (grid[:, -1:] - grid[:, -2:-1]).clamp_min(1e-12)
    steps = torch.arange(1, k + 1, device=grid.device, dtype=grid.dtype)
    lo = grid[:, 0:1] - h_lo * steps.flip(0)
    hi = grid[:, -1:] + h_hi * steps
    knots = torch.cat([lo, grid, hi], dim=1)                       # (in, G+4k+1)
    coef = F.pad(coef, (k, k))                                     # (in, out, G+3k)
    return knots, coef


def spline(x, layer):
    """sum_j B_j(x_i) coef[i, o, j] for every point and edge: (batch, in) -> (batch, in, out)."""
    k = layer.k
    grid = layer.grid
    knots, coef = _padded(layer)
    in_dim = x.shape[1]
    # Interval m of pykan's knot vector with grid[m] <= x < grid[m+1]; points outside get no spline.
    xt = x.detach().t().contiguous()                               # (in, batch)
    m = torch.searchsorted(grid.contiguous(), xt, right=True) - 1  # (in, batch)
    inside = (m >= 0) & (m < grid.shape[1] - 1)
    m = m.clamp(0, grid.shape[1] - 2) + k                          # index into padded knots
    # left[r] = x - t[m+1-r], right[r] = t[m+r] - x, r = 1..k
    offs = torch.arange(1, k + 1, device=x.device)
    left = x.t().unsqueeze(-1) - torch.gather(knots, 1, (m.unsqueeze(-1) + 1 - offs).reshape(in_dim, -1)).reshape(m.shape + (k,))
    right = torch.gather(knots, 1, (m.unsqueeze(-1) + offs).reshape(in_dim, -1)).reshape(m.shape + (k,)) - x.t().unsqueeze(-1)
    N = [torch.ones_like(left[..., 0])]
    for r in range(1, k + 1):
        saved = torch.zeros_like(N[0])
        nxt = []
        for j in range(r):
            denom = right[..., j] + left[..., r - j - 1]
            temp = N[j] / torch.where(denom == 0, torch.ones_like(denom), denom)
            temp = torch.where(denom == 0, torch.zeros_like(temp), temp)
            nxt.append(saved + right[..., j] * temp)
            saved = left[..., r - j - 1] * temp
        nxt.append(saved)
        N = nxt
    basis = torch.stack(N, dim=-1) * inside.unsqueeze(-1)          # (in, batch, k+1)
    # Bases m-k..m of the padded set -> coefficient columns m-k..m of the padded coefficients.
    cols = m.unsqueeze(-1) - k + torch.arange(k + 1, device=x.device)  # (in, batch, k+1)
    n_cols = coef.shape[-1]
    flat = (cols + torch.arange(in_dim, device=x.device).view(-1, 1, 1) * n_cols).reshape(-1)
    gathered = coef.permute(0, 2, 1).reshape(-1, coef.shape[1])[flat]   # small scatter in backward
    gathered = gathered.reshape(cols.shape + (coef.shape[1],))    # (in, batch, k+1, out)
    return torch.einsum("ibj,ibjo->bio", basis, gathered)


def layer_forward(x, layer):
    y = layer.scale_base * layer.base_fun(x)[:, :, None] + layer.scale_sp * spline(x, layer)
    return (layer.mask * y).sum(dim=1)


def forward(model, x):
    """The numerical output of pykan's ``model(x)``, differentiable in parameters and in x."""
    x = x[:, model.input_id.long()]
    for l, layer in enumerate(model.act_fun):
        x = layer_forward(x, layer)
        x = model.subnode_scale[l] * x + model.subnode_bias[l]
        x = model.node_scale[l] * x + model.node_bias[l]
    return x


def trainable_params(model) -> list:
    """The parameters that shape the output (not the inactive symbolic branch's)."""
    return [p for layer in model.act_fun for p in (layer.coef, layer.scale_base, layer.scale_sp)
            if p.requires_grad]
