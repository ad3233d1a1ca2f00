"""A section's MLPs and SIRENs of every depth and activation as one stacked network.

Why: a GPU evaluates a section's 20 net configurations (MLP depths 2..6 x tanh/relu/silu, SIREN
depths 2..6) as one fixed-shape program, one launch sequence for all members (180 in section 1.1),
instead of 20 ensembles one after another, each too small to fill the device and each paying its
own launches and host round trips.

What it costs on the CPU, where nothing is gained from fewer launches: every member computes the
depth-D layers (4 hidden layers where the section's members have 2 on average), a partly used layer adds
a ``where`` forward and two backward, each layer a ``cat`` of its activation runs, and B = 180
tensors of (5, 1024) floats per member no longer fit the caches. Measured (time.perf_counter, one
torch thread, float64, a loss and its gradient in X, 15 repetitions after a warm-up, merged and
separate interleaved; two cores shared with other jobs, load 2.5-3, so the minimum is the steadier
figure): section 1.1's 20 configurations x 9 datasets on 1000 points, regression: merged 95-100 ms
(median 115-180) against 31-33 ms (median 40-50) for the 20 StackedNets of the same members one
after another, about 3x; section 1.2's PINN loss (20 x 3 datasets, 1000 interior points): 103-140
ms against 49-60 ms, about 2-2.5x. So the CPU keeps training one StackedNet per configuration.

Layout: every row has the depth-D layout of ``StackedNet`` (D: the list's largest depth): L0
(n_in -> width), hidden H1..H(D-2) (width -> width), the output (width -> 1). A depth-d member uses
L0, H1..H(d-2) and the output; a hidden layer it skips passes value, gradient and Laplacian through
(``torch.where``, not a product with a mask: 0 x NaN is NaN). X is read through
``where(active column, X, 0)``, so every column a member does not use, skipped layers and padding,
gets exactly zero gradient, NaN or not, and its value never reaches the output.

Row order is the caller's: row b is ``configs[b]``. Each layer applies each activation to the rows
of each run of equal activations (a kernel per run, then a cat), so rows grouped by activation
(``grouped_order``: tanh | relu | silu | sine, stable) make it 4 kernels; any other order is as
correct, with more of them.

Guarantees (tests/unit/test_merged_nets.py), bit for bit: a member's loss, value, gradient and
Laplacian in x, and its parameter gradient, are its own ``StackedNet``'s on its own row
(``to_own_row``): the same operations (``_matmul`` and the activation steps of ``utils.engine.nets``)
on its rows, a skipped layer being a copy. One exception, ~1e-17 relative: through ``derivatives``,
the parameter gradient of a depth-2 member whose activation step is autograd's with an s'' term
(tanh): StackedNet keeps its first layer's gradient in x broadcast over the points, here a skipped
layer's ``where`` expands it, so autograd sums over the points after adding the step's two
contributions instead of before. A member's numbers never depend on its companions, bit for bit,
for one layout depth (``max_depth``; rows never mix, run slices start on whole lanes as in
StackedNet, and rows that skip every hidden layer are expanded as the ``where`` would). ``init``
and ``module`` are StackedNet's per member, so saved models are ordinary MLP/SIREN modules.
"""
from __future__ import annotations

import math

import torch

from utils.engine import nets
from utils.engine.nets import StackedNet, _activation, _ActivationStep, _linear, _matmul
from utils.numerics.lanes import pad_points
from utils.numerics.rows import row_size, row_views

ACTIVATION_ORDER = ("tanh", "relu", "silu", "sine")
_ACTIVATIONS = {a: _activation(a) for a in ACTIVATION_ORDER}  # (s, derivs, step), as StackedNet's


def _normalized(config):
    family, activation, depth = config
    if family not in ("mlp", "siren") or depth < 2:
        raise ValueError(f"not a net configuration: {config!r}")
    return family, "sine" if family == "siren" else activation, int(depth)


def grouped_order(configs) -> list[int]:
    """The order of ``configs`` that groups them by activation (tanh, relu, silu, sine; stable)."""
    acts = [_normalized(c)[1] for c in configs]
    return sorted(range(len(acts)), key=lambda b: ACTIVATION_ORDER.index(acts[b]))


class MergedNets:
    """Members ``configs[b] = (family, activation, depth)`` (SIREN: any activation, read as "sine")
    with one input width and one hidden width; row b of X is member b.

    ``max_depth`` fixes the row layout (default: the deepest member's); a program that must not
    depend on which configurations it holds (``--quick`` trains depths 2 and 3) passes 6.
    """

    def __init__(self, configs, n_in: int, width: int, max_depth: int | None = None):
        self.configs = [_normalized(c) for c in configs]
        self.n_in, self.width = n_in, width
        self.depth = max_depth or max(d for _, _, d in self.configs)
        if any(d > self.depth for _, _, d in self.configs):
            raise ValueError("a member is deeper than max_depth")
        self.shapes = StackedNet("mlp", n_in, width, self.depth).shapes
        self.row_size = row_size(sum(math.prod(s) for s in self.shapes))
        starts = [0]
        for s in self.shapes:
            starts.append(starts[-1] + math.prod(s))
        self._nets = {c: StackedNet(c[0], n_in, width, c[2], c[1]) for c in self.configs}
        # member b's own parameters (its L0, H1..H(d-2), output), in its own row's order
        own_layers = lambda d: (*range(d - 1), self.depth - 1)  # noqa: E731
        self._cols = [torch.cat([torch.arange(starts[2 * l], starts[2 * l + 2]) for l in own_layers(d)])
                      for _, _, d in self.configs]
        self.acts = [a for _, a, _ in self.configs]
        self.depths = torch.tensor([d for _, _, d in self.configs])
        self._columns = torch.zeros(len(self.configs), self.row_size, dtype=torch.bool)
        for b, c in enumerate(self._cols):
            self._columns[b, c] = True
        self._plans = {}
        self.runs = self._plan(None, "cpu")[2]  # (activation, rows) of each run: a kernel each per layer

    # -- members

    def net(self, b) -> StackedNet:
        """Member b's own StackedNet (the shape its own row, its module and its init have)."""
        return self._nets[self.configs[b]]

    def to_own_row(self, row, b):
        """Member b's row of its own StackedNet from its merged row (the last axis of ``row``)."""
        net = self.net(b)
        own = row.new_zeros(*row.shape[:-1], net.row_size)
        own[..., :net.n_params] = row[..., self._cols[b].to(row.device)]
        return own

    def from_own_row(self, own, b):
        """Member b's merged row from its own StackedNet row (skipped layers and padding zero)."""
        row = own.new_zeros(*own.shape[:-1], self.row_size)
        row[..., self._cols[b].to(own.device)] = own[..., :self.net(b).n_params]
        return row

    def module(self, row, b):
        """Member b's own torch module (MLP or SIREN) holding its parameters from its merged row."""
        return self.net(b).module(self.to_own_row(row, b))

    def init(self, seeds, device="cpu", dtype=None):
        """(B, row_size): member b's used parameters as StackedNet.init([seeds[b]]) gives them, the others 0."""
        X = torch.stack([self.from_own_row(self.net(b).init([s], dtype=dtype)[0], b) for b, s in enumerate(seeds)])
        return X.to(device)

    def own_row_sum(self, device):
        """``t (B, row_size) -> (B,)``: each member's sum over its own StackedNet row (its columns in its
        own order, that row's zero padding included), the sum torch takes of that row.

        Why: torch's ``sum`` associates by position, so the same numbers laid out in the merged row
        round otherwise; the optimizer's two row sums (|g|_1, the line search's slope) taken this way
        let a merged member take its own ensemble's steps bit for bit (``ResidentLBFGS(row_sum=...)``).
        One gather and one sum per depth; fixed shapes, nothing read on the host.
        """
        by_depth = {}
        for b, (_, _, d) in enumerate(self.configs):
            by_depth.setdefault(d, []).append(b)
        plans = []
        for rows in by_depth.values():
            net = self.net(rows[0])
            index = torch.zeros(net.row_size, dtype=torch.long)
            index[:net.n_params] = self._cols[rows[0]]
            plans.append((torch.tensor(rows, device=device), index.to(device),
                          (torch.arange(net.row_size) < net.n_params).to(device)))

        def row_sum(t):
            out = t.new_empty(t.shape[0])
            for rows, index, own in plans:
                out[rows] = torch.where(own, t[rows][:, index], 0.0).sum(1)
            return out
        return row_sum

    def count_params(self, X=None) -> list[int]:
        """Each member's own parameter count (the ones it uses)."""
        return [self.net(b).n_params for b in range(len(self.configs))]

    def astype(self, dtype):
        return self

    # -- evaluation

    def _plan(self, members, device):
        """For the rows ``members`` (None: all): the column mask, each hidden layer's member mask (None:
        all use it, False: none does) and the runs of equal activations (activation, rows)."""
        key = None if members is None else tuple(torch.as_tensor(members).tolist())
        if key == tuple(range(len(self.configs))):
            key = None
        if (key, str(device)) in self._plans:
            return self._plans[key, str(device)]
        idx = list(range(len(self.configs))) if key is None else list(key)
        depths = self.depths[idx]
        layers = []
        for l in range(1, self.depth - 1):
            used = depths >= l + 2
            layers.append(None if used.all() else False if not used.any() else used.to(device))
        runs = []
        for b in idx:
            if runs and runs[-1][0] == self.acts[b]:
                runs[-1][1] += 1
            else:
                runs.append([self.acts[b], 1])
        plan = self._columns[idx].to(device), layers, [(a, n) for a, n in runs]
        if key is None:  # subsets are rare (a member gone NaN): do not keep their plans
            self._plans[key, str(device)] = plan
        return plan

    @staticmethod
    def _per_run(runs, fn, *ts):
        """fn(activation, *its rows of ts) for each run, the results concatenated along the rows."""
        if len(runs) == 1:
            return fn(runs[0][0], *ts)
        sizes = [n for _, n in runs]
        parts = [torch.split(t, sizes) if t is not None else [None] * len(runs) for t in ts]
        outs = [fn(a, *p) for (a, _), p in zip(runs, zip(*parts))]
        return torch.cat(outs) if torch.is_tensor(outs[0]) else tuple(torch.cat(o) for o in zip(*outs))

    def _views(self, X, members):
        columns, layers, runs = self._plan(members, X.device)
        return row_views(torch.where(columns, X, 0.0), self.shapes), layers, runs

    def forward(self, X, x, members=None):
        """Outputs (B, N, 1) of the members (rows of X; ``members``: which of this net's they are) at x (B, N, n_in)."""
        views, layers, runs = self._views(X, members)
        n = x.shape[1]
        h = _linear(views[0], pad_points(x.transpose(1, 2), 2), views[1])   # points last, whole lanes
        for l in range(1, self.depth):
            used = layers[l - 1] if l < self.depth - 1 else None
            if used is False:
                continue
            z = _linear(views[2 * l], self._per_run(runs, lambda a, t: _ACTIVATIONS[a][0](t), h), views[2 * l + 1])
            h = z if used is None else torch.where(used[:, None, None], z, h)
        return h[:, :, :n].transpose(1, 2)

    def derivatives(self, X, x, members=None):
        """Value (B, N, 1), gradient in x (B, N, n_in) and Laplacian in x (B, N, 1), forward-mode as StackedNet."""
        views, layers, runs = self._views(X, members)
        B, n, d = x.shape
        h = pad_points(x.transpose(1, 2), 2)
        N = h.shape[2]
        W, b = views[0], views[1]
        v = _linear(W, h, b)
        gz, lz = W.unsqueeze(-1), None
        for l in range(1, self.depth):
            used = layers[l - 1] if l < self.depth - 1 else None
            if used is False:
                if lz is None:  # as where() would give it: a member's numbers never depend on its companions
                    gz, lz = gz.expand(B, -1, d, N).contiguous(), v.new_zeros(v.shape)
                continue
            s, g, lap = self._per_run(runs, _step, v, gz, lz)
            W, b = views[2 * l], views[2 * l + 1]
            nv = _linear(W, s, b)
            ngz = _matmul(W, g.reshape(B, -1, d * N)).view(B, -1, d, N)
            nlz = _matmul(W, lap)
            if used is None:
                v, gz, lz = nv, ngz, nlz
            else:
                m = used[:, None, None]
                v, gz = torch.where(m, nv, v), torch.where(m[..., None], ngz, gz)
                lz = torch.where(m, nlz, 0.0 if lz is None else lz)
        return v[:, :, :n].transpose(1, 2), gz[:, 0, :, :n].transpose(1, 2), lz[:, :, :n].transpose(1, 2)


def _step(activation, z, gz, lz):
    """StackedNet's activation step for one activation (read ``nets.WRITTEN_BACKWARD`` at each call)."""
    _, derivs, step = _ACTIVATIONS[activation]
    if activation in nets.WRITTEN_BACKWARD:
        return _ActivationStep.apply(z, gz, lz, derivs)
    return step(z, gz, lz)
