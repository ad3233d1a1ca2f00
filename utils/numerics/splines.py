"""B-spline math of pykan's KAN layers, for many splines at once: bases, values, derivatives, fits.

pykan evaluates all G+k bases of every edge through dense recursions (``kan.spline.B_batch``); here
each point finds its knot interval and evaluates only the k+1 nonzero bases (the Cox-de Boor
triangle, vectorized over those k+1), the derivative of a degree-k spline is the degree-(k-1) spline
of its divided coefficient differences on the same knots, and a least-squares fit of many splines is
one deterministic batched solve. The stacked KAN (``utils.engine.kan_stack``), the compiled KAN loss
(``utils.engine.kan_numba``) and the changes to pykan (``utils.models.pykan_compat``) all use these.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- B-spline bases

def padded_knots(grid, k: int):
    """The grid extended by k more knots at each end, spaced as its end intervals."""
    h_lo, h_hi = grid[..., 1:2] - grid[..., :1], grid[..., -1:] - grid[..., -2:-1]
    steps = torch.arange(1, k + 1, device=grid.device, dtype=grid.dtype)
    return torch.cat([grid[..., :1] - h_lo * steps.flip(0), grid, grid[..., -1:] + h_hi * steps], -1)


def local_bases(xt, grid, k: int, lowest: int | None = None):
    """The nonzero B-spline bases of degrees k, k-1, ..., ``lowest`` at each point, and the interval.

    xt (S, n) points of S splines, grid (S, G+2k+1) knots -> ([N_k, N_k-1, ...], m) with N_r
    (S, r+1, n) and m (S, n): basis i of degree r at a point is pykan's basis number m - r + i.
    pykan's bases near the ends of its knot vector use only the knots it has; padding the knots
    by k on each side lets every interval use the same formula and gives the same values for the
    bases that exist (the padded ones get zero coefficients). Points outside the grid get no
    spline, as in pykan.
    """
    lowest = k if lowest is None else lowest
    n_int = grid.shape[1] - 1
    m = torch.searchsorted(grid.contiguous(), xt.detach().contiguous(), right=True) - 1
    N = ((m >= 0) & (m < n_int)).to(xt.dtype).unsqueeze(1)              # degree 0: the interval's indicator
    m = m.clamp(0, n_int - 1)
    out = [N] if lowest == 0 else []
    if k == 0:
        return out, m
    xt = xt.unsqueeze(1)
    knots = padded_knots(grid, k)
    # T[:, q] = knot m+1-k+q for q = 0..2k-1 (m counted in the unpadded grid)
    idx = m.unsqueeze(1) + torch.arange(1, 2 * k + 1, device=xt.device).view(1, -1, 1)
    T = torch.gather(knots, 1, idx.flatten(1)).view(idx.shape)
    left, right = xt - T[:, :k], T[:, k:] - xt   # x - t[m+1-k+i] (i = 0..k-1); t[m+r] - x (r = 1..k)
    for r in range(1, k + 1):  # degree r from degree r-1, all r+1 bases at once
        R, L = right[:, :r], left[:, k - r:]
        temp = N / (R + L)
        N = F.pad(R * temp, (0, 0, 0, 1)) + F.pad(L * temp, (0, 0, 1, 0))
        if r >= lowest:
            out.insert(0, N)
    return out, m


def dense_basis(x, grid, k: int):
    """All G+k bases at each point, zeros included: x (batch, in), grid (in, G+2k+1) -> (in, batch, G+k)."""
    (N,), first = local_bases(x.t(), grid, k)
    n_coef = grid.shape[1] - k - 1
    cols = first.unsqueeze(-1) + torch.arange(k + 1, device=first.device)  # in k-padded columns
    dense = N.new_zeros(first.shape[0], first.shape[1], n_coef + 2 * k)
    return dense.scatter(2, cols, N.transpose(1, 2))[:, :, k:k + n_coef]


def derivative_coefficients(coef, grid, k: int):
    """Coefficients of the first derivative of the splines (degree k-1 on the same knots).

    s = sum_j c_j B_j,k  ->  s' = sum_j k (c_j - c_{j-1}) / (t_{j+k} - t_j) B_j,k-1, j = 0..n,
    with c_{-1} = c_n = 0. coef (..., n) and grid (..., n+k+1), broadcast -> (..., n+1).
    """
    n = coef.shape[-1]
    c = F.pad(coef, (1, 1))
    return k * (c[..., 1:] - c[..., :-1]) / (grid[..., k:k + n + 1] - grid[..., :n + 1])


def spline_values(N, m, coef, r: int):
    """sum_i coef[m - r + i] N_i: splines of degree r from their local bases.

    N (S, r+1, n) and m (S, n) of S = members x inputs splines; coef (S, out, L) -> (S, out, n).
    """
    S, out, _ = coef.shape
    cols = m.unsqueeze(1) + torch.arange(r + 1, device=m.device).view(1, -1, 1)          # (S, r+1, n)
    C = torch.gather(F.pad(coef, (r, r)), 2, cols.flatten(1).unsqueeze(1).expand(-1, out, -1))
    return (C.view(S, out, r + 1, -1) * N.unsqueeze(1)).sum(2)


# ----------------------------------------------------------------------------- least squares

def fit_coefficients(x, y, grid, k: int):
    """Least-squares spline coefficients: pykan's ``curve2coef`` for many splines at once.

    x (S, n) sample points, y (S, out, n) values, grid (S, G+2k+1) -> coef (S, out, G+k), float64.
    Deterministic on every device: the normal equations A'A c = A'y (A'A is (G+k)^2, built from
    the k+1 nonzero bases per point) solved through their eigendecomposition, with eigenvalues
    below 1e-13 of the largest treated as zero, which gives the minimum-norm solution LAPACK's
    gelsd returns where a basis has no samples (a collapsed interval). pykan solves every edge by
    its own ``torch.linalg.lstsq`` (gelsy on the CPU, not deterministic; gels on CUDA, NaN when
    rank deficient); here every member and edge is one batched solve.
    """
    S, out, n_pts = y.shape
    n = grid.shape[1] - k - 1
    f64 = torch.float64
    (N,), m = local_bases(x.to(f64), grid.to(f64), k)                         # (S, k+1, n_pts)
    rows = m.unsqueeze(1) - k + torch.arange(k + 1, device=m.device).view(1, -1, 1)   # basis numbers
    N = N * ((rows >= 0) & (rows < n))
    rows = rows.clamp(0, n - 1)
    y = y.to(f64)
    if x.device.type == "cpu":  # sum the (k+1)^2 products of each point's bases (scatter_add is sequential here)
        pair = (rows.unsqueeze(2) * n + rows.unsqueeze(1)).flatten(1)
        AtA = torch.zeros(S, n * n, dtype=f64).scatter_add_(1, pair, (N.unsqueeze(2) * N.unsqueeze(1)).flatten(1))
        AtA = AtA.view(S, n, n)
        Aty = torch.zeros(S, out, n, dtype=f64)
        for i in range(k + 1):
            Aty.scatter_add_(2, rows[:, i:i + 1].expand(-1, out, -1), N[:, i:i + 1] * y)
        Aty = Aty.transpose(1, 2)
    else:  # atomics would make those sums order-dependent on a GPU: a dense A and batched matmuls
        A = torch.zeros(S, n_pts, n, dtype=f64, device=x.device)
        A.scatter_(2, rows.transpose(1, 2), N.transpose(1, 2))
        AtA, Aty = A.transpose(1, 2) @ A, A.transpose(1, 2) @ y.transpose(1, 2)
    if x.device.type == "cpu":
        # one spline at a time: LAPACK's result depends on where a matrix sits in memory (as gelsy's
        # did), so a batch would give a member other bits than it gets alone or elsewhere in a batch
        return torch.stack([_min_norm_solve(AtA[s].clone(), Aty[s].clone()) for s in range(S)]).transpose(1, 2)
    return _min_norm_solve(AtA, Aty).transpose(1, 2)


def _min_norm_solve(AtA, Aty):
    """The minimum-norm solution of A'A c = A'y from the eigendecomposition of A'A (batched or not)."""
    w, V = torch.linalg.eigh(AtA)
    inv = torch.where(w > 1e-13 * w[..., -1:].clamp_min(0), 1.0 / w, torch.zeros_like(w))
    return V @ (inv.unsqueeze(-1) * (V.transpose(-1, -2) @ Aty))      # (..., n, out)


def extend_grid(grid, k: int):
    """pykan's ``extend_grid``: k more knots at each end, spaced by the grid's mean spacing."""
    h = (grid[..., -1:] - grid[..., :1]) / (grid.shape[-1] - 1)
    steps = torch.arange(1, k + 1, device=grid.device, dtype=grid.dtype)
    return torch.cat([grid[..., :1] - h * steps.flip(0), grid, grid[..., -1:] + h * steps], -1)
