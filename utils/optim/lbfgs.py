"""pykan's L-BFGS (``kan.LBFGS`` as ``fit()`` configures it) for many independent models at once.

Every model here is tiny, so a sweep only uses a GPU (or even a CPU core) well when its models are
evaluated together. Each model of an ensemble (a *member*) keeps its own optimizer state and
takes exactly the steps it would take alone:

- the control flow of ``kan.LBFGS.step`` and its strong-Wolfe line search runs per member on
  Python scalars (``_member_step``, a generator: it yields what it needs next, a gradient
  evaluation at a trial step or a new search direction, and receives a few scalars back), with
  pykan's constants: ``tolerance_ys`` for the curvature pairs, ``max_ls=25`` per line search,
  the first step scaled by 1/|g|_1;
- the vectors (parameters, gradients, directions, curvature history) are rows of tensors on the
  data's device, and every request of one kind is served for all members that made it with one
  batched operation; in particular one batched evaluation serves every member's next trial point.
  A tick costs one objective evaluation and at most two transfers of a few scalars per member;
- a step starts where the previous one's line search ended, so the loss and gradient that
  ``kan.LBFGS`` recomputes there (its ``closure()`` at the start of ``step``) are reused: one
  evaluation of about 25 per step saved, the same iterates (tested). A member whose row of x or
  whose objective changed in between (``forget``: grid updates) is evaluated afresh.

Members advance in lockstep but never share state: the two-loop recursion runs over each member's
own history (stored oldest first, a member with fewer pairs has empty leading slots that
contribute exactly nothing), so a member's iterates equal those of the same model alone to
rounding (tested against ``kan.LBFGS`` itself). A member whose loss turns NaN just runs its own
course with NaN scalars, as pykan's would, and the others are not affected: no operation mixes
rows. Vectors are float64 whatever the models' dtype.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

EVAL, DIRECTION, ACCEPT, SET_T = range(4)  # what a member asks for next


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """kan.LBFGS's minimizer of the cubic through two points with their slopes, clipped to ``bounds``."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square ** 0.5
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(t, f, gtd, gmax, d_norm, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """kan.LBFGS's ``_strong_wolfe`` on scalars: a generator that yields ``(EVAL, t, slot)``.

    The driver evaluates the member at x + t d, stores the gradient in the member's ``slot`` and
    sends back (f, g.d, max|g|). Gradients are referred to by slot (-1: the start point's, whose
    loss, slope and max|g| are f, gtd, gmax); the result is (f, max|g|, t, evaluations, slot of
    the chosen point's gradient).
    """
    slot = 0
    f_new, gtd_new, gmax_new = yield (EVAL, t, slot)
    evals, ls_iter = 1, 0
    # bracket entries: [t, f, gtd, max|g|, gradient slot]
    start = [0.0, f, gtd, gmax, -1]
    prev = start
    new = [t, f_new, gtd_new, gmax_new, slot]
    done = False
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= prev[1]):
            bracket = [prev, new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [new], True
            break
        if gtd_new >= 0:
            bracket = [prev, new]
            break
        t_next = _cubic_interpolate(prev[0], prev[1], prev[2], t, f_new, gtd_new,
                                    bounds=(t + 0.01 * (t - prev[0]), t * 10))
        prev, t = new, t_next
        slot += 1
        f_new, gtd_new, gmax_new = yield (EVAL, t, slot)
        new = [t, f_new, gtd_new, gmax_new, slot]
        evals += 1
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [start, new]
    insuf_progress = False
    low, high = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    while not done and ls_iter < max_ls:
        a, b = bracket[0][0], bracket[1][0]
        if abs(b - a) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(a, bracket[0][1], bracket[0][2], b, bracket[1][1], bracket[1][2])
        hi, lo = max(a, b), min(a, b)
        eps = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < eps:
            if insuf_progress or t >= hi or t <= lo:
                t = hi - eps if abs(t - hi) < abs(t - lo) else lo + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        slot += 1
        f_new, gtd_new, gmax_new = yield (EVAL, t, slot)
        new = [t, f_new, gtd_new, gmax_new, slot]
        evals += 1
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket[low][1]:
            bracket[high] = new
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = new
    t, f_new, _, gmax_new, slot = bracket[0] if len(bracket) == 1 else bracket[low]
    return f_new, gmax_new, t, evals, slot


@numba.njit(cache=True)
def _directions_cpu(idx, first, g, prev_g, d, t, S, Y, rho, H, tolerance_ys, out):
    """``BatchedLBFGS._directions`` compiled, member by member, for CPU tensors (their NumPy views).

    On a CPU the batched torch version costs about 60 small tensor operations per call, more than
    the models' evaluations; here it is a loop over the members' own vectors, with the same
    arithmetic as kan.LBFGS: the pair (y, s) is kept when y.s > tolerance_ys (history oldest first,
    empty slots have rho = 0), then the two-loop recursion.
    """
    m, P = S.shape[1], S.shape[2]
    al = np.zeros(m)
    for j in range(len(idx)):
        b = idx[j]
        if first[j]:
            S[b, :, :] = 0.0
            Y[b, :, :] = 0.0
            rho[b, :] = 0.0
            H[b] = 1.0
            for p in range(P):
                d[b, p] = -g[b, p]
        else:
            ys, yy = 0.0, 0.0
            for p in range(P):
                y = g[b, p] - prev_g[b, p]
                ys += y * (d[b, p] * t[b])
                yy += y * y
            if ys > tolerance_ys:
                for i in range(m - 1):
                    S[b, i, :] = S[b, i + 1, :]
                    Y[b, i, :] = Y[b, i + 1, :]
                    rho[b, i] = rho[b, i + 1]
                for p in range(P):
                    Y[b, m - 1, p] = g[b, p] - prev_g[b, p]
                    S[b, m - 1, p] = d[b, p] * t[b]
                rho[b, m - 1] = 1.0 / ys
                H[b] = ys / yy
            q = -g[b]
            for i in range(m - 1, -1, -1):
                al[i] = 0.0
                if rho[b, i] != 0.0:
                    sq = 0.0
                    for p in range(P):
                        sq += S[b, i, p] * q[p]
                    al[i] = sq * rho[b, i]
                    for p in range(P):
                        q[p] -= al[i] * Y[b, i, p]
            for p in range(P):
                d[b, p] = q[p] * H[b]
            for i in range(m):
                if rho[b, i] != 0.0:
                    yr = 0.0
                    for p in range(P):
                        yr += Y[b, i, p] * d[b, p]
                    c = al[i] - yr * rho[b, i]
                    for p in range(P):
                        d[b, p] += c * S[b, i, p]
        gtd, dmax, nan = 0.0, 0.0, False
        for p in range(P):
            prev_g[b, p] = g[b, p]
            gtd += g[b, p] * d[b, p]
            dmax = max(dmax, abs(d[b, p]))
            nan = nan or d[b, p] != d[b, p]
        out[j, 0], out[j, 1] = gtd, np.nan if nan else dmax  # NaN propagates, as in torch's amax


def _two_loop(g, S, Y, rho, H):
    """The two-loop recursion's direction -H g for a batch of members, in a dozen batched operations.

    Each loop is a recurrence over the history whose coefficients are inner products of history
    vectors, so it is a triangular system in the (m, m) Gram matrix S Y': the first loop's
    alpha_i = rho_i (-s_i.g - sum_{j>i} alpha_j s_i.y_j), the second loop's c_i = alpha_i - beta_i =
    alpha_i - rho_i (y_i.d0 + sum_{j<i} c_j y_i.s_j). Same algebra as the loops (empty slots have
    rho = 0 and give 0), other rounding. Written for GPUs: the loops cost 4 small kernels per slot
    (400 launches per direction at pykan's history of 100, measured to dominate a CUDA sweep).
    """
    eye = torch.eye(S.shape[1], dtype=S.dtype, device=S.device)
    SY = S @ Y.transpose(1, 2)                                   # (b, m, m): s_i . y_j
    upper = eye + rho[:, :, None] * SY.triu(1)
    alpha = torch.linalg.solve_triangular(upper, -rho[:, :, None] * (S @ g[:, :, None]), upper=True)
    d0 = H[:, None] * (-g - (Y.transpose(1, 2) @ alpha)[..., 0])
    lower = eye + rho[:, :, None] * SY.transpose(1, 2).tril(-1)
    c = torch.linalg.solve_triangular(lower, alpha - rho[:, :, None] * (Y @ d0[:, :, None]), upper=False)
    return d0 + (S.transpose(1, 2) @ c)[..., 0]


class _MemberState:
    __slots__ = ("n_iter", "g0max", "g0l1")

    def __init__(self):
        self.n_iter = 0


def _member_step(state: _MemberState, f, lr, max_iter, max_eval, tolerance_grad, tolerance_change, max_ls):
    """``kan.LBFGS.step`` for one member after its first evaluation (loss f), on scalars.

    Yields DIRECTION (reply: g.d and max|d|), EVAL (via the line search), ACCEPT (t, slot: move to
    the line search's point) and SET_T (t: the step length kept for the next curvature pair when
    the step ends before a line search).
    """
    gmax = state.g0max
    if gmax <= tolerance_grad:
        return
    evals = 1
    for n_iter in range(1, max_iter + 1):
        state.n_iter += 1
        first = state.n_iter == 1
        gtd, d_max = yield (DIRECTION, first)
        prev_loss = f
        t = min(1.0, 1.0 / state.g0l1) * lr if first else lr
        if gtd > -tolerance_change:
            yield (SET_T, t)
            return
        f, gmax, t, ls_evals, slot = yield from _strong_wolfe(t, f, gtd, gmax, d_max, max_ls=max_ls)
        yield (ACCEPT, t, slot)
        evals += ls_evals
        if n_iter == max_iter or evals >= max_eval or gmax <= tolerance_grad:
            return
        if abs(t) * d_max <= tolerance_change:  # equals kan.LBFGS's max|t d| (rounding is monotone)
            return
        if abs(f - prev_loss) < tolerance_change:
            return


class BatchedLBFGS:
    """``kan.LBFGS(lr, max_iter, history_size, line_search_fn="strong_wolfe", tolerance_*)`` for B members.

    ``step(fun, x, members)`` runs one optimizer step for each listed member from its row of
    ``x`` (B, P) and returns the new x; the state (curvature history, direction, step length)
    carries over between steps, also when the caller changes x in between (pykan's grid updates
    do). ``fun(X, idx)`` returns the losses (b,) and gradients (b, P) of members ``idx`` (a long
    tensor) at the rows of X; it may return them in any float dtype. A new optimizer is made for
    every fit() of pykan's protocol (each KAN grid), as pykan's fit() makes one.
    """

    def __init__(self, n_members, n_params, device="cpu", lr=1.0, max_iter=20, max_eval=None,
                 tolerance_grad=1e-7, tolerance_change=1e-9, tolerance_ys=1e-32, history_size=100, max_ls=25,
                 compiled=None):
        self.lr, self.max_iter, self.history_size = lr, max_iter, history_size
        self.max_eval = max_eval if max_eval is not None else max_iter * 5 // 4
        self.tolerance_grad, self.tolerance_change, self.tolerance_ys = tolerance_grad, tolerance_change, tolerance_ys
        self.max_ls = max_ls
        B, P, m = n_members, n_params, history_size
        f64 = dict(dtype=torch.float64, device=device)
        self.g, self.d, self.prev_g = torch.zeros(B, P, **f64), torch.zeros(B, P, **f64), torch.zeros(B, P, **f64)
        self.t = torch.zeros(B, **f64)          # step length of the last iteration, per member
        self.S, self.Y = torch.zeros(B, m, P, **f64), torch.zeros(B, m, P, **f64)   # oldest first
        self.rho = torch.zeros(B, m, **f64)     # 1 / (y.s); 0 in empty slots
        self.H_diag = torch.ones(B, **f64)
        self.slots = torch.zeros(B, max_ls + 1, P, **f64)  # gradients of the current line search's trials
        # with self.g, where it was evaluated and its (loss, |g|_1, max|g|): a step starting there reuses
        # them (kan.LBFGS's closure() at the start of a step recomputes what its last line search did);
        # NaN rows of x_known: evaluate afresh
        self.x_known = torch.full((B, P), float("nan"), **f64)
        self.stats, self.slot_stats = torch.zeros(B, 3, **f64), torch.zeros(B, max_ls + 1, 3, **f64)
        self.fun = None
        self.members = [_MemberState() for _ in range(B)]
        # the two-loop recursion compiled on the CPU (measured: 10-30x less time than 60 torch operations)
        self.compiled = torch.device(device).type == "cpu" if compiled is None else compiled

    # ------------------------------------------------------------------ batched requests

    def _evaluate(self, fun, x, reqs, first_eval):
        """One batched evaluation; returns each member's reply scalars (a line search's trial), or
        records the gradient and its statistics at the members' own rows (the start of a step)."""
        idx = torch.tensor([b for b, _ in reqs], device=x.device)
        if first_eval:
            X = x[idx]
        else:
            t = torch.tensor([r[1] for _, r in reqs], dtype=x.dtype, device=x.device)
            X = x[idx] + t[:, None] * self.d[idx]
        F, G = fun(X, idx)
        F, G = F.to(torch.float64), G.to(torch.float64)
        gmax = G.abs().amax(1)
        stats = torch.stack([F, G.abs().sum(1), gmax], 1)
        if first_eval:
            self.g[idx], self.x_known[idx], self.stats[idx] = G, X, stats
            return None
        slots = torch.tensor([r[2] for _, r in reqs], device=x.device)
        self.slots[idx, slots], self.slot_stats[idx, slots] = G, stats
        return [tuple(r) for r in torch.stack([F, (G * self.d[idx]).sum(1), gmax], 1).tolist()]

    def _directions(self, reqs):
        """New search directions (kan.LBFGS's history update and two-loop recursion); g.d and max|d|."""
        if self.compiled:
            out = np.zeros((len(reqs), 2))
            _directions_cpu(np.array([b for b, _ in reqs]), np.array([r[1] for _, r in reqs]), self.g.numpy(),
                            self.prev_g.numpy(), self.d.numpy(), self.t.numpy(), self.S.numpy(), self.Y.numpy(),
                            self.rho.numpy(), self.H_diag.numpy(), self.tolerance_ys, out)
            return [tuple(r) for r in out.tolist()]
        idx = torch.tensor([b for b, _ in reqs], device=self.g.device)
        first = torch.tensor([r[1] for _, r in reqs], device=self.g.device)
        g, S, Y, rho, H = self.g[idx], self.S[idx], self.Y[idx], self.rho[idx], self.H_diag[idx]
        y, s = g - self.prev_g[idx], self.d[idx] * self.t[idx, None]
        ys = (y * s).sum(1)
        keep = (ys > self.tolerance_ys) & ~first   # shift the history and append the new pair where kept
        k = keep[:, None, None]
        S = torch.where(k, torch.cat([S[:, 1:], s[:, None]], 1), S)
        Y = torch.where(k, torch.cat([Y[:, 1:], y[:, None]], 1), Y)
        rho = torch.where(keep[:, None], torch.cat([rho[:, 1:], (1.0 / ys)[:, None]], 1), rho)
        H = torch.where(keep, ys / (y * y).sum(1), H)
        # the first iteration ever: steepest descent and a fresh history
        S, Y = S.masked_fill(first[:, None, None], 0.0), Y.masked_fill(first[:, None, None], 0.0)
        rho, H = rho.masked_fill(first[:, None], 0.0), H.masked_fill(first, 1.0)
        d = _two_loop(g, S, Y, rho, H)
        self.S[idx], self.Y[idx], self.rho[idx], self.H_diag[idx], self.d[idx] = S, Y, rho, H, d
        self.prev_g[idx] = g
        return [tuple(r) for r in torch.stack([(g * d).sum(1), d.abs().amax(1)], 1).tolist()]

    def _accept(self, x, reqs):
        """Move members to their line search's point; its gradient becomes theirs."""
        idx = torch.tensor([b for b, _ in reqs], device=x.device)
        t = torch.tensor([r[1] for _, r in reqs], dtype=x.dtype, device=x.device)
        x[idx] = x[idx] + t[:, None] * self.d[idx]
        self.t[idx] = t
        moved = [(i, r[2]) for i, (_, r) in enumerate(reqs) if r[2] >= 0]
        if moved:
            rows = idx[[i for i, _ in moved]]
            slots = torch.tensor([s for _, s in moved], device=x.device)
            self.g[rows], self.stats[rows] = self.slots[rows, slots], self.slot_stats[rows, slots]
            self.x_known[rows] = x[rows]
        return [None] * len(reqs)

    def _set_t(self, reqs):
        self.t[torch.tensor([b for b, _ in reqs], device=self.t.device)] = torch.tensor(
            [r[1] for _, r in reqs], dtype=self.t.dtype, device=self.t.device)
        return [None] * len(reqs)

    def forget(self):
        """The objective changed (a grid update): the next step evaluates every member afresh."""
        self.x_known.fill_(float("nan"))

    # ------------------------------------------------------------------ one step

    def step(self, fun, x, members=None):
        """One optimizer step of every listed member (default: all); returns the new x (B, P).

        Requests are served kind by kind in the order a member makes them (accept, direction,
        set t, evaluation), so a member whose line search ended joins the same tick's evaluation.
        """
        x = x.detach().to(torch.float64).clone()
        members = list(range(len(self.members))) if members is None else list(members)
        if not members:
            return x
        queue = {kind: [] for kind in (ACCEPT, DIRECTION, SET_T, EVAL)}
        gens = {}

        def advance(b, reply):
            try:
                request = gens[b].send(reply)
            except StopIteration:
                return
            queue[request[0]].append((b, request))

        if fun is not self.fun:
            self.forget()
        self.fun = fun
        same = (x[members] == self.x_known[members]).all(1).tolist()  # one transfer, not one per member
        fresh = [b for b, kept in zip(members, same) if not kept]
        if fresh:
            self._evaluate(fun, x, [(b, None) for b in fresh], first_eval=True)
        for b, (f, g_l1, g_max) in zip(members, self.stats[members].tolist()):
            st = self.members[b]
            st.g0max, st.g0l1 = g_max, g_l1
            gens[b] = _member_step(st, f, self.lr, self.max_iter, self.max_eval, self.tolerance_grad,
                                   self.tolerance_change, self.max_ls)
            advance(b, None)
        serve = {ACCEPT: lambda reqs: self._accept(x, reqs), DIRECTION: self._directions,
                 SET_T: self._set_t, EVAL: lambda reqs: self._evaluate(fun, x, reqs, first_eval=False)}
        while any(queue.values()):
            for kind in (ACCEPT, DIRECTION, SET_T, EVAL):
                # in member order: an evaluation of every member then takes the data as they are
                # (no gathered copy), and caches keyed on the data hold (KAN first-layer bases)
                reqs, queue[kind] = sorted(queue[kind], key=lambda r: r[0]), []
                if reqs:
                    for (b, _), reply in zip(reqs, serve[kind](reqs)):
                        advance(b, reply)
        return x
