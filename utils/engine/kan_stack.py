"""pykan KANs of one width trained as one: B members' coefficients and scales are the rows of (B, P).

pykan evaluates all G+k B-spline bases of every edge through dense recursions and records
activations on every call; for these tiny models the cost is the number of tensor operations.
Here every member keeps pykan's parameters and numbers, with only what the math needs:

- each point finds its knot interval and evaluates only the k+1 nonzero bases (the Cox-de Boor
  triangle, vectorized over those k+1), then gathers the k+1 matching coefficients; all members
  and all inputs of a layer go through one set of tensor operations;
- every member has its own grids (grid updates adapt them to the member's data), masks (pruned
  edges) and node affine maps, as pykan's layers have;
- ``derivatives`` propagates value, gradient and Laplacian in x forward through the layers, with
  the spline derivatives in closed form (the derivative of a degree-k spline is the degree-(k-1)
  spline of its divided coefficient differences on the same knots), so PDE residuals need no
  nested autograd;
- ``regularizer`` is pykan's ``edge_forward_spline_n`` sparsity penalty (the pruned KAN's
  sparsify stage), from the same forward;
- grid updates and ``refine`` are pykan's, batched: the new grids from each member's samples (or
  its coarser grid), the coefficients by a deterministic least-squares fit (``fit_coefficients``).

pykan stays the model of record: ``from_pykan`` stacks pykan models, ``to_pykan`` writes a member
back into a pykan ``KAN`` (whose own forward, ``plot``, ``prune`` and ``auto_symbolic`` work).
Only the numerical branch with pykan's default silu base is supported (``check_supported``).

Row layout of X: for each layer, coef (in, out, G+k), scale_base (in, out), scale_sp (in, out),
flattened, as pykan's ``act_fun[l]`` parameters.
"""
from __future__ import annotations

import math
import weakref

import torch

from utils.numerics.lanes import lanewise, pad_points
from utils.numerics.rows import row_size, row_views
from utils.numerics.splines import derivative_coefficients, extend_grid, fit_coefficients, local_bases, spline_values

PARAM_NAMES = ("coef", "scale_base", "scale_sp")


def check_supported(model) -> None:
    if any(w[1] != 0 for w in model.width if isinstance(w, list)):
        raise ValueError("stacked KAN: multiplication nodes are not supported")
    if model.symbolic_enabled and any(bool(s.mask.any()) for s in model.symbolic_fun):
        raise ValueError("stacked KAN: symbolic functions are active; use model(x)")
    if any(not isinstance(layer.base_fun, torch.nn.SiLU) for layer in model.act_fun):
        raise ValueError("stacked KAN: only the silu base function is supported")
    if not all(layer.scale_base.requires_grad and layer.scale_sp.requires_grad for layer in model.act_fun):
        raise ValueError("stacked KAN: scale_base and scale_sp must be trainable (pykan's default)")


class _ContiguousGrad(torch.autograd.Function):
    """The identity, whose gradient is made contiguous: the products of a layer's per-edge scales with
    (b, in, out, n) tensors are reduced over the points in backward, and torch orders that reduction
    by the gradient's memory layout, which differs for one member and for several (measured)."""

    @staticmethod
    def forward(ctx, t):
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


class _EdgeGrad(torch.autograd.Function):
    """sum_i dphi[b, i, o, n] grad[b, i, n, d] -> (b, n, o, d): the chain rule through a layer's edges.

    As products and sums with their gradients computed here on contiguous tensors: autograd's
    reductions of the broadcast products ran over strided layouts that torch orders differently
    for one member than for several, so a member's gradient depended on its ensemble (measured)."""

    @staticmethod
    def forward(ctx, dphi, gi):
        ctx.save_for_backward(dphi, gi)
        return (dphi.permute(0, 3, 2, 1).unsqueeze(-1) * gi.permute(0, 2, 1, 3).unsqueeze(2)).sum(3)

    @staticmethod
    def backward(ctx, g):
        dphi, gi = ctx.saved_tensors                                   # (b, in, out, n), (b, in, n, d)
        gt = g.permute(0, 2, 1, 3).contiguous()                        # (b, out, n, d)
        g_dphi = (gt.unsqueeze(1) * gi.unsqueeze(2)).sum(-1)           # (b, in, out, n)
        g_gi = (dphi.unsqueeze(-1) * gt.unsqueeze(1)).sum(2)           # (b, in, n, d)
        return g_dphi.contiguous(), g_gi.contiguous()


# ----------------------------------------------------------------------------- the stacked model

class StackedKAN:
    """B pykan KANs [n_0, n_1, ..., n_L] with G intervals and order k, as one.

    Per layer l: ``grids[l]`` (B, n_l, G+2k+1), ``masks[l]`` (B, n_l, n_l+1) and the node affine
    map after it, ``affine[l]`` = (a, b), each (B, n_l+1): pykan's subnode and node scales and
    biases folded into x -> a x + b.
    """

    def __init__(self, width, grid_size, k, grids, masks, affine):
        self.width, self.grid_size, self.k = list(width), grid_size, k
        self.grids, self.masks, self.affine = grids, masks, affine
        self.shapes = []
        for l in range(len(width) - 1):
            i, o = width[l], width[l + 1]
            self.shapes += [(i, o, grid_size + k), (i, o), (i, o)]
        self.n_params = sum(math.prod(s) for s in self.shapes)
        self.row_size = row_size(self.n_params)
        self.n_members = grids[0].shape[0]

    # -- to and from pykan

    @classmethod
    def from_pykan(cls, models):
        """The members' stacked state and their parameters (B, P), from pykan KANs of one width."""
        for m in models:
            check_supported(m)
            if not torch.equal(m.input_id.cpu(), torch.arange(m.width_in[0])):
                raise ValueError("stacked KAN: pruned inputs are not supported")
        m0 = models[0]
        width = [w[0] if isinstance(w, list) else w for w in m0.width]
        if any([w[0] if isinstance(w, list) else w for w in m.width] != width or m.grid != m0.grid
               or m.k != m0.k for m in models):
            raise ValueError("stacked KAN: members must share width, grid size and k")
        L = len(m0.act_fun)
        st = lambda f: torch.stack([f(m).detach() for m in models])  # noqa: E731
        grids = [st(lambda m: m.act_fun[l].grid) for l in range(L)]
        masks = [st(lambda m: m.act_fun[l].mask) for l in range(L)]
        affine = [(st(lambda m: m.node_scale[l] * m.subnode_scale[l]),
                   st(lambda m: m.node_scale[l] * m.subnode_bias[l] + m.node_bias[l])) for l in range(L)]
        stacked = cls(width, m0.grid, m0.k, grids, masks, affine)
        X = torch.zeros(len(models), stacked.row_size, dtype=grids[0].dtype, device=grids[0].device)
        for b, m in enumerate(models):
            X[b, :stacked.n_params] = torch.cat([getattr(m.act_fun[l], n).detach().reshape(-1) for l in range(L)
                                                 for n in PARAM_NAMES])
        return stacked, X

    def to_pykan(self, X, b: int, model):
        """Write member b (its row of X, grids and masks) into the pykan ``model`` of its width and grid."""
        with torch.no_grad():
            for l, layer in enumerate(model.act_fun):
                layer.grid.data = self.grids[l][b].detach().clone().to(layer.grid)
                layer.mask.data = self.masks[l][b].detach().clone().to(layer.mask)
                for name, v in zip(PARAM_NAMES, self._layer_views(X[b:b + 1], l)):
                    getattr(layer, name).data = v[0].detach().clone().to(getattr(layer, name))
        return model

    def astype(self, dtype):
        """The same members with grids, masks and node maps in another dtype (for float64 metrics)."""
        cast = lambda t: t.to(dtype)  # noqa: E731
        return StackedKAN(self.width, self.grid_size, self.k, [cast(g) for g in self.grids],
                          [cast(m) for m in self.masks], [(cast(a), cast(b)) for a, b in self.affine])

    def select(self, members):
        """The stacked state of some members (a long tensor of member indices)."""
        sel = lambda t: t[members]  # noqa: E731
        return StackedKAN(self.width, self.grid_size, self.k, [sel(g) for g in self.grids],
                          [sel(m) for m in self.masks], [(sel(a), sel(b)) for a, b in self.affine])

    def _views(self, X):
        return row_views(X, self.shapes)

    def _layer_views(self, X, l):
        return self._views(X)[3 * l:3 * l + 3]

    def count_params(self, b=None):
        """Parameters that shape the output: per unmasked edge G+k coefficients and two scales (per member)."""
        counts = sum(m.sum((1, 2)) for m in self.masks) * (self.grid_size + self.k + 2)
        return counts.round().long().tolist()

    # -- forward

    def _layer(self, X, l, h, members, grad=None, lap=None, record=False, source=None):
        """Layer l for members' inputs h (b, n, in), n a whole number of lanes (``utils.numerics.lanes``); with
        grad (b, n, in, d) and lap (b, n, in) also their derivatives in x. Returns (h, grad, lap) of the
        next layer, and the edge activations (b, in, out, n) and inputs when ``record``. ``source``: the
        unpadded data h was made from, when h is the data (caching the first layer's bases)."""
        coef, sb, sp = self._layer_views(X, l)
        pick = (lambda t: t) if members is None else (lambda t: t[members])
        grid, mask = pick(self.grids[l]), pick(self.masks[l])
        a, b0 = (pick(t) for t in self.affine[l])
        B, n_pts, n_in = h.shape
        n_out, k = coef.shape[2], self.k
        # every elementwise operation below works on contiguous tensors: torch computes a transcendental
        # (sigmoid) on a strided tensor by another path than on a contiguous one, and the two differ in
        # the last bit (measured), so a member's bits would depend on its ensemble's layout
        degrees = 0 if grad is None else min(2, k)
        xt, Ns, m, sig = self._inputs(h, grid, members, k - degrees, source)
        C = coef.reshape(B * n_in, n_out, -1)
        s = spline_values(Ns[0], m, C, k).view(B, n_in, n_out, n_pts)
        xb = xt.view(B, n_in, 1, n_pts)
        scale_b, scale_s, mk = sb.unsqueeze(-1), sp.unsqueeze(-1), mask.unsqueeze(-1)
        phi = _ContiguousGrad.apply(mk * (scale_b * (xb * sig) + scale_s * s))   # (b, in, out, n)
        out = (a.unsqueeze(1) * phi.sum(1).transpose(1, 2) + b0.unsqueeze(1)).contiguous()
        if grad is None:
            return out, None, None, (phi, h) if record else None
        g1 = grid.reshape(B * n_in, 1, -1)
        C1 = derivative_coefficients(C, g1, k)
        d1 = spline_values(Ns[1], m, C1, k - 1).view(B, n_in, n_out, n_pts) if k >= 1 else torch.zeros_like(s)
        if k >= 2:
            C2 = derivative_coefficients(C1, g1, k - 1)
            d2 = spline_values(Ns[2], m, C2, k - 2).view(B, n_in, n_out, n_pts)
        else:
            d2 = torch.zeros_like(s)
        dsilu = sig * (1 + xb * (1 - sig))
        ddsilu = sig * (1 - sig) * (2 + xb * (1 - 2 * sig))
        dphi = _ContiguousGrad.apply(mk * (scale_b * dsilu + scale_s * d1))
        ddphi = _ContiguousGrad.apply(mk * (scale_b * ddsilu + scale_s * d2))
        if grad is True:  # the data: grad x = identity, Lap x = 0
            new_grad = a[:, None, :, None] * dphi.permute(0, 3, 2, 1)
            new_lap = a.unsqueeze(1) * ddphi.sum(1).transpose(1, 2)
            return out, new_grad.contiguous(), new_lap.contiguous(), (phi, h) if record else None
        gi = grad.permute(0, 2, 1, 3).contiguous()                               # (b, in, n, d)
        sq = (gi * gi).sum(-1)                                                   # (b, in, n)
        # sum over the inputs as products and a sum, not einsum: its batched matmul rounds a member by its
        # position in the batch (measured), which would make a member's numbers depend on its ensemble
        new_grad = a[:, None, :, None] * _EdgeGrad.apply(dphi, gi)
        lap_in = lap.permute(0, 2, 1).contiguous().unsqueeze(2)
        new_lap = a.unsqueeze(1) * (ddphi * sq.unsqueeze(2) + dphi * lap_in).sum(1).transpose(1, 2)
        return out, new_grad.contiguous(), new_lap.contiguous(), (phi, h) if record else None

    def _inputs(self, h, grid, members, lowest, source=None):
        """A layer's inputs as (splines, points), their nonzero bases, intervals and sigmoid.

        For the first layer (``source``: the data) these depend on the data and the grids only, not on
        the parameters, so they are kept while neither changes (the optimizer evaluates the same points
        ~25 times a step).
        """
        key = None
        if source is not None and not source.requires_grad:
            key = (id(source), source._version, tuple(source.shape), id(self.grids[0]), self.grids[0]._version,
                   None if members is None else tuple(members.tolist()), lowest)
            cache = self.__dict__.setdefault("_cache", {})
            hit = cache.get(key)
            if hit is not None and hit[0]() is source:
                return hit[1]
        B, n_pts, n_in = h.shape
        # every elementwise operation below works on contiguous tensors: torch computes a transcendental
        # (sigmoid) on a strided tensor by another path than on a contiguous one, and the two differ in
        # the last bit (measured), so a member's bits would depend on its ensemble's layout
        xt = h.permute(0, 2, 1).contiguous().view(B * n_in, n_pts)
        Ns, m = local_bases(xt, grid.reshape(B * n_in, -1), self.k, lowest=lowest)
        value = (xt, Ns, m, torch.sigmoid(xt.view(B, n_in, 1, n_pts)))
        if key is not None:
            if len(cache) >= 4:  # the training points, the boundary points, and a little more
                cache.pop(next(iter(cache)))
            cache[key] = (weakref.ref(source), value)  # an id is only this tensor's while it lives
        return value

    def forward(self, X, x, members=None, record=False):
        """Outputs (b, n, out) of the members at x (b, n, n_in); ``members`` selects their grids and
        masks (default: all, in order). With ``record``, also each layer's (activations, inputs) at
        the n points."""
        n = x.shape[1]
        h, acts = pad_points(x, 1), []
        for l in range(len(self.width) - 1):
            h, _, _, rec = self._layer(X, l, h, members, record=record, source=x if l == 0 else None)
            if record:
                acts.append((rec[0][..., :n], rec[1][:, :n]))
        return (h[:, :n], acts) if record else h[:, :n]

    def derivatives(self, X, x, members=None):
        """Value (b, n, 1), gradient in x (b, n, d) and Laplacian in x (b, n, 1), forward-mode."""
        n = x.shape[1]
        h, grad, lap = pad_points(x, 1), True, None  # True: the inputs are the coordinates themselves
        for l in range(len(self.width) - 1):
            h, grad, lap, _ = self._layer(X, l, h, members, grad, lap, source=x if l == 0 else None)
        return h[:, :n], grad[:, :n, 0], lap[:, :n]

    def regularizer(self, X, x, members=None, reg=("edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0)):
        """pykan's ``get_reg(reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff)`` per member (b,),
        from the activations of a forward at x, differentiable in X (as in pykan's fit())."""
        metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff = reg
        if metric != "edge_forward_spline_n":
            raise ValueError(f"stacked KAN: regularizer {metric!r} is not implemented")
        _, acts = self.forward(X, x, members, record=True)
        total = 0.0
        for phi, h in acts:
            out_range = _std(phi, -1).transpose(1, 2)                       # (b, out, in), as pykan
            in_range = _std(h, 1).unsqueeze(1) + 0.1                        # (b, 1, in)
            vec = out_range / in_range
            l1 = vec.sum((1, 2))
            p_row = vec / (vec.sum(2, keepdim=True) + 1)
            p_col = vec / (vec.sum(1, keepdim=True) + 1)
            ent_row = -(p_row * lanewise(torch.log2, p_row + 1e-4)).sum(2).mean(1)
            ent_col = -(p_col * lanewise(torch.log2, p_col + 1e-4)).sum(1).mean(1)
            total = total + lamb_l1 * l1 + lamb_entropy * (ent_row + ent_col)
        if lamb_coef or lamb_coefdiff:
            for l in range(len(self.width) - 1):
                coef = self._layer_views(X, l)[0]
                total = total + lamb_coef * coef.abs().mean(2).sum((1, 2)) \
                    + lamb_coefdiff * torch.diff(coef, dim=-1).abs().mean(2).sum((1, 2))
        return total

    # -- grid updates and refinement (pykan's, batched)

    @torch.no_grad()
    def update_grid(self, X, x, members):
        """pykan's ``update_grid(x)`` for the listed members (long tensor): each layer's grid adapted to
        the samples that reach it (layers before it already updated), coefficients refit.

        A member whose new grid is not strictly increasing and finite (constant samples collapse it,
        e.g. in a pruned KAN) keeps its grids and coefficients, as if its update had not happened.
        Returns the new X.
        """
        X = X.clone()
        sub = X[members]
        old_grids = [g[members].clone() for g in self.grids]
        old = sub.clone()
        h = x
        n_pts = x.shape[1]
        ok = torch.ones(len(members), dtype=torch.bool, device=x.device)
        for l in range(len(self.width) - 1):
            coef = self._layer_views(sub, l)[0]
            Bm, _, n_in = h.shape
            xs = torch.sort(h, dim=1)[0].permute(0, 2, 1).reshape(Bm * n_in, n_pts)
            grid = self.grids[l][members].reshape(Bm * n_in, -1)
            (N,), m = local_bases(xs, grid, self.k)
            y = spline_values(N, m, coef.reshape(Bm * n_in, coef.shape[2], -1), self.k)   # old splines at samples
            G = self.grid_size
            ids = [int(n_pts / G * i) for i in range(G)] + [-1]
            adaptive = xs[:, ids]
            hstep = (adaptive[:, -1:] - adaptive[:, :1]) / G
            uniform = adaptive[:, :1] + hstep * torch.arange(G + 1, device=xs.device, dtype=xs.dtype)
            eps = self.grid_eps
            new_grid = extend_grid(eps * uniform + (1 - eps) * adaptive, self.k)
            good = (torch.isfinite(new_grid).all(1) & (torch.diff(new_grid, dim=1) > 0).all(1)
                    & torch.isfinite(y).flatten(1).all(1) & torch.isfinite(xs).all(1))
            ok &= good.view(Bm, n_in).all(1)
            new_coef = coef.reshape(Bm * n_in, coef.shape[2], -1).clone()
            if bool(good.any()):
                new_coef[good] = fit_coefficients(xs[good], y[good], new_grid[good], self.k).to(new_coef.dtype)
            self.grids[l][members] = torch.where(good.unsqueeze(1), new_grid, grid).view(Bm, n_in, -1)
            self._layer_views(sub, l)[0].copy_(new_coef.view_as(coef))
            h = self._layer(sub, l, pad_points(h, 1), members)[0][:, :n_pts]
        # members with a collapsed grid anywhere (or non-finite samples) keep everything as it was
        bad = ~ok
        if bool(bad.any()):
            for l, g in enumerate(old_grids):
                self.grids[l][members[bad]] = g[bad]
            sub[bad] = old[bad]
        X[members] = sub
        return X

    grid_eps = 0.02  # pykan's default

    @torch.no_grad()
    def refine(self, X, x, new_grid: int, members):
        """pykan's ``refine(new_grid)``: the same members on a finer grid, fit to the coarser splines.

        Each layer's new grid interpolates its old one (pykan: a degree-1 spline through the old
        grid points, evaluated at evenly spaced positions); its coefficients are the least-squares fit
        of the old layer's splines at the inputs that reach it from the old model's forward on x.
        Members not listed (diverged ones) get the new shape with their old values interpolated
        nowhere: their rows stay NaN. Returns the refined StackedKAN and its X.
        """
        k, G_old = self.k, self.grid_size
        grids, new_X_parts = [], []
        h = x
        sub = X[members]
        views = self._views(X)
        B = X.shape[0]
        for l in range(len(self.width) - 1):
            coef, sb, sp = self._layer_views(sub, l)
            Bm, n_pts, n_in = h.shape
            inner = self.grids[l][:, :, k:-k] if k else self.grids[l]                 # (B, in, G_old+1)
            pos = torch.linspace(-1, 1, new_grid + 1, dtype=inner.dtype, device=inner.device)
            u = (pos + 1) / 2 * G_old                                            # in units of old intervals
            j = u.floor().long().clamp(0, G_old - 1)
            frac = (u - j).to(inner.dtype)
            fine = inner[..., j] * (1 - frac) + inner[..., j + 1] * frac
            grid = extend_grid(fine, k)                                          # (B, in, G+2k+1)
            xs = h.permute(0, 2, 1).reshape(Bm * n_in, n_pts)
            (N,), m = local_bases(xs, self.grids[l][members].reshape(Bm * n_in, -1), k)
            y = spline_values(N, m, coef.reshape(Bm * n_in, coef.shape[2], -1), k)
            fit = fit_coefficients(xs, y, grid[members].reshape(Bm * n_in, -1), k)
            new_coef = torch.full((B, n_in, coef.shape[2], new_grid + k), float("nan"), dtype=X.dtype,
                                  device=X.device)
            new_coef[members] = fit.view(Bm, n_in, coef.shape[2], -1).to(X.dtype)
            new_X_parts += [new_coef.reshape(B, -1), views[3 * l + 1].reshape(B, -1), views[3 * l + 2].reshape(B, -1)]
            grids.append(grid)
            h = self._layer(sub, l, pad_points(h, 1), members)[0][:, :n_pts]
        refined = StackedKAN(self.width, new_grid, k, grids, [m.clone() for m in self.masks],
                             [(a.clone(), b.clone()) for a, b in self.affine])
        new_X = X.new_zeros(B, refined.row_size)
        new_X[:, :refined.n_params] = torch.cat(new_X_parts, 1)
        return refined, new_X


def _std(t, dim):
    """torch.std (unbiased) from two sums: torch's own std reduces one member's (n, 1) column as a whole
    tensor and several members' columns one by one, rounding them differently (measured), which
    would make a member's regularizer depend on its ensemble."""
    mean = t.sum(dim, keepdim=True) / t.shape[dim]
    var = ((t - mean) ** 2).sum(dim) / (t.shape[dim] - 1)
    # a masked edge has zero spread: its std is 0 with gradient 0 (torch.std's), not sqrt's infinite slope
    return torch.where(var > 0, var.clamp_min(torch.finfo(var.dtype).tiny).sqrt(), torch.zeros_like(var))
