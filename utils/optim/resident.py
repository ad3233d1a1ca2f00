"""``BatchedLBFGS`` with every member's control flow held in tensors: an optimizer a GPU can run unattended.

On a GPU the host-driven ``BatchedLBFGS`` waits on Python: each tick reads the members' scalars
back (about 13 blocking round trips) to decide what each member does next, so the device idles
between a few microseconds of work. Here the same algorithm is a state machine over tensors: a
member's place in ``kan.LBFGS.step`` and its strong-Wolfe line search is a phase code, its
bracket and counters are rows of preallocated tensors, and one ``tick`` is a fixed sequence of
tensor operations that applies pykan's rules to every row with ``torch.where`` selects. A tick
reads nothing on the host and its operations do not depend on the data (tested by tracing them),
and it updates its state in place, so it can be captured once as a CUDA graph and replayed; the
host looks at a device-side "all done" flag every K ticks.

What it guarantees: on the CPU, in float64, every member's iterates, trial points and evaluation
counts are bit-equal to ``BatchedLBFGS``'s, the engine the pipeline runs on a CPU (tested), so what is proven of that
engine carries over (kan.LBFGS to rounding, NaN members disturb nobody, the step-start evaluation
is reused). To that end each row performs the scalar engine's float64 operations in the same
order, with Python's semantics: ``min``/``max`` keep their first argument when the comparison is
False (NaN), a condition's negation is ``~(a >= b)``, never ``a < b``, a mask selects and never
multiplies (0 x NaN is NaN), and powers are libm's (``_pow``). The directions follow the compiled
CPU path (``utils.optim.lbfgs._directions_cpu``) operation for operation, its inner products
accumulated in the same order (``_dot``), so the resident engine reproduces the host engine that
the pipeline runs on a CPU, bit for bit, and a member's bits do not depend on its batch.

What it costs: every row is evaluated at every tick, also rows with nothing to evaluate (their
result is discarded), and every block runs on every row; on the CPU the host-driven engine stays
faster. Members do not wait for each other between steps: each runs its own number of steps and
leaves a snapshot of x at the end of each, so a run takes about max over members of their
evaluations instead of the sum over steps of the slowest member's.
"""
from __future__ import annotations

import torch


# a member's phase between ticks; the evaluation of the first three is used (live)
BRACKET, ZOOM, FRESH, START, END, IDLE = range(6)
# kan.LBFGS's _strong_wolfe with its defaults: the optimizer does not pass its tolerance_change
# on, so the zoom stops on a bracket shorter than 1e-9 / max|d| whatever the optimizer's is
C1, C2, LS_TOLERANCE_CHANGE = 1e-4, 0.9, 1e-9


def _dot(a, b):
    """Each row's sum of a * b, accumulated over the columns in order, as the compiled CPU directions'
    loops accumulate it (torch's ``sum`` reduces in another order; ``cumsum`` in this one, also for
    float64 on a GPU only to rounding: a GPU's scan is parallel)."""
    return torch.cumsum(a * b, 1)[:, -1]


def _two_loop(g, S, Y, rho, H):
    """The two-loop recursion's direction -H g, with ``_directions_cpu``'s operations in its order:
    slot by slot over the history (oldest first; empty slots have rho = 0 and are skipped), each
    inner product ``_dot``. m small steps of (B, P) operations per loop, no matrix kernels: the same
    bits for a member in a batch of any size."""
    m = S.shape[1]
    q, alpha = -g, [None] * m
    for i in range(m - 1, -1, -1):
        used = rho[:, i] != 0
        alpha[i] = _dot(S[:, i], q) * rho[:, i]
        q = torch.where(used[:, None], q - alpha[i][:, None] * Y[:, i], q)
    d = q * H[:, None]
    for i in range(m):
        used = rho[:, i] != 0
        c = alpha[i] - _dot(Y[:, i], d) * rho[:, i]
        d = torch.where(used[:, None], d + c[:, None] * S[:, i], d)
    return d


def _put(dst, mask, src):
    """``dst[mask] = src`` in place, on the device: a select, never a product (0 x NaN is NaN)."""
    mask = mask.view(mask.shape + (1,) * (dst.dim() - mask.dim()))
    if isinstance(src, torch.Tensor):
        torch.where(mask, src, dst, out=dst)
    else:
        dst.masked_fill_(mask, src)


def _max(a, b):
    """Python's ``max(a, b)``: b only where b > a, so a NaN comparison keeps a."""
    return torch.where(b > a, b, a)


def _min(a, b):
    """Python's ``min(a, b)``: b only where b < a."""
    return torch.where(b < a, b, a)


class ResidentLBFGS:
    """``BatchedLBFGS``'s optimizer (kan.LBFGS per member, same options) for B members of P parameters.

    ``run(fun, x, steps)`` takes ``steps`` LBFGS steps per member (an int or a (B,) tensor) from x
    (B, P) and returns the new x; ``fun(X)`` returns the losses (B,) and gradients (B, P) of every
    row of X, in any float dtype. Step k of member b leaves x in ``snap_x[k, b]``, the loss at the
    step's start (what kan.LBFGS.step returns) in ``snap_loss[k, b]``, the member's live evaluation
    count in ``snap_evals[k, b]`` and the tick in ``snap_tick[k, b]``; ``max_steps`` is their
    capacity. ``run`` is ``start`` and ``tick`` until ``finished`` (checked on the host every
    ``check_every`` ticks); a caller that captures ``tick`` calls them itself. The optimizer state
    carries over between runs, also when x changes in between; ``forget()`` when the objective
    changed (a grid update), as ``BatchedLBFGS.forget``.

    ``n_evals`` counts each member's live evaluations, those whose result was used; while ``fun``
    runs, ``live`` says which rows of its evaluation will be.
    """

    def __init__(self, n_members, n_params, device="cpu", lr=1.0, max_iter=20, max_eval=None,
                 tolerance_grad=1e-7, tolerance_change=1e-9, tolerance_ys=1e-32, history_size=100, max_ls=25,
                 max_steps=1, row_sum=None):
        if max_iter < 1 or max_ls < 0:
            raise ValueError("max_iter >= 1 and max_ls >= 0")
        self.lr, self.max_iter, self.max_ls, self.max_steps = lr, max_iter, max_ls, max_steps
        self.max_eval = max_eval if max_eval is not None else max_iter * 5 // 4
        self.tolerance_grad, self.tolerance_change, self.tolerance_ys = tolerance_grad, tolerance_change, tolerance_ys
        B, P, m = n_members, n_params, history_size
        self.B, self.P = B, P
        f64, i64 = dict(dtype=torch.float64, device=device), dict(dtype=torch.long, device=device)
        flags = dict(dtype=torch.bool, device=device)
        # kan.LBFGS's state, as in BatchedLBFGS
        self.x, self.g, self.d, self.prev_g = (torch.zeros(B, P, **f64) for _ in range(4))
        self.S, self.Y = torch.zeros(B, m, P, **f64), torch.zeros(B, m, P, **f64)   # oldest first
        self.rho, self.H_diag = torch.zeros(B, m, **f64), torch.ones(B, **f64)
        self.t = torch.zeros(B, **f64)                 # the last iteration's step length
        self.n_iter = torch.zeros(B, **i64)            # state['n_iter']: iterations ever
        # (loss, |g|_1, max|g|) at x, and where they were evaluated (NaN: evaluate afresh)
        self.stats = torch.zeros(B, 3, **f64)
        self.x_known = torch.full((B, P), float("nan"), **f64)
        # the current step
        self.phase = torch.full((B,), IDLE, **i64)
        self.iter, self.evals = torch.zeros(B, **i64), torch.zeros(B, **i64)   # its iterations, evaluations
        self.prev_loss, self.step_loss = torch.zeros(B, **f64), torch.zeros(B, **f64)
        self.steps_done, self.target = torch.zeros(B, **i64), torch.zeros(B, **i64)
        # the current line search: its start's slope, max|d|, the trial t, kan's ls_iter (= evaluations - 1)
        self.gtd0, self.dnorm, self.tc = torch.zeros(B, **f64), torch.zeros(B, **f64), torch.zeros(B, **f64)
        self.ls_iter = torch.zeros(B, **i64)
        # entries (t, f, g.d, gradient slot; slot -1: the start's gradient, g): the previous trial
        # while bracketing, then the bracket; low: the bracket's lower entry
        self.tp, self.fp, self.gtdp = (torch.zeros(B, **f64) for _ in range(3))
        self.slotp = torch.zeros(B, **i64)
        self.bt, self.bf, self.bgtd = (torch.zeros(B, 2, **f64) for _ in range(3))
        self.bslot, self.low = torch.zeros(B, 2, **i64), torch.zeros(B, **i64)
        self.insuf, self.done = torch.zeros(B, **flags), torch.zeros(B, **flags)
        # the trials' gradients and (loss, |g|_1, max|g|) by slot; the last slot takes discarded rows
        self.trash = max_ls + 1
        self.slots, self.slot_stats = torch.zeros(B, max_ls + 2, P, **f64), torch.zeros(B, max_ls + 2, 3, **f64)
        # a snapshot per step: views of buffers whose last row takes the rows of members not ending a step
        self._snaps = (torch.full((max_steps + 1, B, P), float("nan"), **f64),
                       torch.full((max_steps + 1, B), float("nan"), **f64),
                       torch.zeros(max_steps + 1, B, **i64), torch.zeros(max_steps + 1, B, **i64))
        self.snap_x, self.snap_loss, self.snap_evals, self.snap_tick = (v[:max_steps] for v in self._snaps)
        self.n_evals, self.ticks = torch.zeros(B, **i64), torch.zeros((), **i64)
        self.live, self.finished = torch.zeros(B, **flags), torch.ones((), **flags)
        self.cols = torch.arange(2, **i64)
        # libm's pow, element by element, on the CPU (see _pow)
        self.libm_pow = torch.device(device).type == "cpu"
        self._pow_base = torch.zeros(B, 2, **f64)
        self._two, self._half = torch.full((B,), 2.0, **f64), torch.full((B,), 0.5, **f64)
        self.fun = None
        # each row's sum (|g|_1 and the trial's slope g.d): torch's, unless the rows hold members laid
        # out otherwise than their own ensembles' (utils.engine.merged_nets.MergedNets.own_row_sum)
        self.row_sum = row_sum or (lambda t: t.sum(1))

    # ------------------------------------------------------------------ host side

    def forget(self):
        """The objective changed (a grid update): every member's next step evaluates afresh."""
        self.x_known.fill_(float("nan"))

    def start(self, x, steps):
        """Loads x (B, P) and gives every member ``steps`` new steps (int or (B,) tensor); it begins
        each with the step-start evaluation its last line search made there, or a fresh one."""
        target = torch.as_tensor(steps, dtype=torch.long).to(self.target.device).expand(self.B)
        if int(target.max()) > self.max_steps:
            raise ValueError(f"at most max_steps={self.max_steps} steps per run")
        self.x.copy_(x)
        self.target.copy_(target)
        self.steps_done.zero_()
        self.ticks.zero_()
        self.snap_x.fill_(float("nan"))
        self.snap_loss.fill_(float("nan"))
        same = (self.x == self.x_known).all(1)
        self.phase.copy_(torch.where(self.target > 0, torch.where(same, START, FRESH), IDLE))
        self.finished.copy_((self.phase == IDLE).all())

    def run(self, fun, x, steps, check_every=20):
        """``steps`` optimizer steps per member from x; returns the new x (B, P), float64."""
        if fun is not self.fun:
            self.forget()
        self.fun = fun
        self.start(x, steps)
        # a step is at most one fresh evaluation, max_iter line searches and an idle tick
        limit = self.max_steps * (self.max_iter * (self.max_ls + 1) + 2) + check_every
        ticks = 0
        while not self.finished.item():   # the host's only read
            if ticks > limit:
                raise RuntimeError("members still running after more ticks than their steps can take")
            for _ in range(check_every):
                self.tick(fun)
            ticks += check_every
        return self.x.clone()

    # ------------------------------------------------------------------ one tick

    def _pow(self, base, exponent):
        """Python's ``base ** exponent`` (2 or 0.5) as ``_cubic_interpolate`` computes it on floats.

        Python's float power is libm's pow, which is not correctly rounded: on 200,000 random doubles
        x ** 2 differed from x * x in 0.09 % of cases and x ** 0.5 from math.sqrt in 0.1 %, and
        torch.sqrt on the CPU from math.sqrt in 1.3 %. torch.pow of a strided tensor calls libm's pow
        element by element (on a contiguous one it takes a vectorized pow, 1.7 % off Python's), which
        keeps the CPU bit-equal to the scalar engine (tested). Other devices: x * x and sqrt.
        """
        if not self.libm_pow:
            return base * base if exponent == 2 else base.sqrt()
        strided = self._pow_base[:, 0]
        strided.copy_(base)
        return torch.pow(strided, self._two if exponent == 2 else self._half)

    def _cubic_interpolate(self, x1, f1, g1, x2, f2, g2, lo, hi):
        """``utils.lbfgs._cubic_interpolate`` on rows, clipped to [lo, hi], term by term."""
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_square = self._pow(d1, 2) - g1 * g2
        d2 = self._pow(d2_square, 0.5)
        min_pos = torch.where(x1 <= x2, x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
                              x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)))
        return torch.where(d2_square >= 0, _min(_max(min_pos, lo), hi), (lo + hi) / 2.0)

    def tick(self, fun):
        """Evaluates one point of every member, then advances every member as far as that takes it.

        Blocks in the order a member meets them (``BatchedLBFGS.step`` serves ACCEPT, DIRECTION,
        SET_T, EVAL in that order): its step's first evaluation; its line search's trial (bracketing,
        then zoom); the line search's end (accept, kan.LBFGS's exits); the step's end (snapshot, the
        next step's start); the next direction and the next line search's first trial. So a member
        can end a line search, its iteration, even its step, and request its next trial in one tick.
        """
        B, P = self.B, self.P
        phase, tol_change = self.phase, self.tolerance_change
        fresh, bracketing, zooming = phase == FRESH, phase == BRACKET, phase == ZOOM

        # every row evaluated: at x for a step's start, else at the trial point
        torch.le(phase, FRESH, out=self.live)
        X = torch.where(fresh[:, None], self.x, self.x + self.tc[:, None] * self.d)
        F, G = fun(X)
        F, G = F.to(torch.float64), G.to(torch.float64)
        gmax = G.abs().amax(1)
        stats = torch.stack([F, self.row_sum(G.abs()), gmax], 1)
        gtd_new = self.row_sum(G * self.d)
        self.n_evals.add_(self.live)
        self.ticks.add_(1)

        # a step's first evaluation (kan.LBFGS's closure() at the start of step)
        _put(self.g, fresh, G)
        _put(self.stats, fresh, stats)
        _put(self.x_known, fresh, self.x)
        _put(phase, fresh, START)

        # ---- line searches: the trial's result (kan's _strong_wolfe from its first evaluation on)
        searching = bracketing | zooming
        _put(self.ls_iter, searching, self.ls_iter + 1)
        slot = torch.where(searching, self.ls_iter, self.trash)
        self.slots.scatter_(1, slot[:, None, None].expand(B, 1, P), G[:, None])
        self.slot_stats.scatter_(1, slot[:, None, None].expand(B, 1, 3), stats[:, None])
        t, f0, gtd0 = self.tc.clone(), self.stats[:, 0].clone(), self.gtd0   # trial; the search's start
        armijo = F > (f0 + C1 * t * gtd0)
        curvature = gtd_new.abs() <= -C2 * gtd0

        # bracketing: [prev, new] (no decrease, or slope >= 0), [new] (strong Wolfe: done),
        # [start, new] (max_ls trials), else a longer trial, extrapolated
        exhausted = bracketing & (self.ls_iter >= self.max_ls)
        looping = bracketing & ~exhausted
        no_decrease = armijo | ((self.ls_iter > 1) & (F >= self.fp))
        ascent = gtd_new >= 0
        single = looping & ~no_decrease & curvature
        pair = looping & (no_decrease | (~curvature & ascent))
        extend = looping & ~no_decrease & ~curvature & ~ascent
        enter = pair | single | exhausted
        _put(self.bt, enter, torch.stack([torch.where(pair, self.tp, torch.where(single, t, 0.0)), t], 1))
        _put(self.bf, enter, torch.stack([torch.where(pair, self.fp, torch.where(single, F, f0)), F], 1))
        _put(self.bgtd, enter, torch.stack([torch.where(pair, self.gtdp, torch.where(single, gtd_new, gtd0)),
                                            gtd_new], 1))
        _put(self.bslot, enter, torch.stack([torch.where(pair, self.slotp, torch.where(single, slot, -1)), slot], 1))
        _put(self.done, enter, single)
        _put(self.insuf, enter, False)
        t_next = self._cubic_interpolate(self.tp, self.fp, self.gtdp, t, F, gtd_new,
                                         t + 0.01 * (t - self.tp), t * 10)
        _put(self.tp, extend, t)
        _put(self.fp, extend, F)
        _put(self.gtdp, extend, gtd_new)
        _put(self.slotp, extend, slot)
        _put(self.tc, extend, t_next)

        # zoom: the trial replaces the bracket's high entry (no decrease), or becomes its low entry
        # (the old low its high where the slope points away from it); strong Wolfe: done
        low = self.low[:, None]
        at_low = self.cols == low
        worse = armijo | (F >= self.bf.gather(1, low)[:, 0])
        better = zooming & ~worse
        bt_low, bt_high = self.bt.gather(1, low)[:, 0], self.bt.gather(1, 1 - low)[:, 0]
        swap = better & ~curvature & (gtd_new * (bt_high - bt_low) >= 0)
        to_new = zooming[:, None] & torch.where(worse[:, None], ~at_low, at_low)
        to_old_low = swap[:, None] & ~at_low
        for entries, new in ((self.bt, t), (self.bf, F), (self.bgtd, gtd_new), (self.bslot, slot)):
            _put(entries, to_old_low, entries.gather(1, low))
            _put(entries, to_new, new[:, None])
        _put(self.done, better & curvature, True)
        _put(self.low, enter | (zooming & worse), torch.where(self.bf[:, 0] <= self.bf[:, 1], 0, 1))
        _put(phase, enter, ZOOM)

        # the zoom loop's head: finished, or the next trial (cubic, kept 0.1 of the bracket from its ends)
        zoom = phase == ZOOM
        a, b = self.bt[:, 0], self.bt[:, 1]
        short = (b - a).abs() * self.dnorm < LS_TOLERANCE_CHANGE
        finish = zoom & (self.done | (self.ls_iter >= self.max_ls) | short)
        trial = self._cubic_interpolate(a, self.bf[:, 0], self.bgtd[:, 0], b, self.bf[:, 1], self.bgtd[:, 1],
                                        torch.where(a <= b, a, b), torch.where(a <= b, b, a))
        hi, lo = _max(a, b), _min(a, b)
        eps = 0.1 * (hi - lo)
        near = _min(hi - trial, trial - lo) < eps
        jump = near & (self.insuf | (trial >= hi) | (trial <= lo))
        trial = torch.where(jump, torch.where((trial - hi).abs() < (trial - lo).abs(), hi - eps, lo + eps), trial)
        zoom_on = zoom & ~finish
        _put(self.insuf, zoom_on, near & ~jump)
        _put(self.tc, zoom_on, trial)

        # ---- a finished line search: move to bracket[low]; its gradient becomes the member's
        pick = self.low[:, None]
        t_ls, slot_ls = self.bt.gather(1, pick)[:, 0], self.bslot.gather(1, pick)[:, 0]
        _put(self.x, finish, self.x + t_ls[:, None] * self.d)
        _put(self.t, finish, t_ls)
        moved = finish & (slot_ls >= 0)
        src = torch.where(slot_ls >= 0, slot_ls, self.trash)[:, None, None]
        _put(self.g, moved, self.slots.gather(1, src.expand(B, 1, P))[:, 0])
        _put(self.stats, moved, self.slot_stats.gather(1, src.expand(B, 1, 3))[:, 0])
        _put(self.x_known, moved, self.x)
        _put(self.evals, finish, self.evals + self.ls_iter + 1)
        # kan.LBFGS's exits after an iteration
        f_ls, gmax_ls = self.stats[:, 0], self.stats[:, 2]
        stop = ((self.iter == self.max_iter) | (self.evals >= self.max_eval) | (gmax_ls <= self.tolerance_grad)
                | (t_ls.abs() * self.dnorm <= tol_change) | ((f_ls - self.prev_loss).abs() < tol_change))
        _put(phase, finish & stop, END)
        direction = finish & ~stop

        # ---- a step's end: snapshot, then the member's next step or IDLE
        ending = phase == END
        k = torch.where(ending, self.steps_done, self.max_steps)[None]
        snap_x, snap_loss, snap_evals, snap_tick = self._snaps
        snap_x.scatter_(0, k[:, :, None].expand(1, B, P), self.x[None])
        snap_loss.scatter_(0, k, self.step_loss[None])
        snap_evals.scatter_(0, k, self.n_evals[None])
        snap_tick.scatter_(0, k, self.ticks.expand(1, B))
        self.steps_done.add_(ending)
        same = (self.x == self.x_known).all(1)   # where the last line search ended: reuse its evaluation
        _put(phase, ending, torch.where(self.steps_done >= self.target, IDLE, torch.where(same, START, FRESH)))

        # a step's start (kan.LBFGS.step after its closure()): converged, or its first iteration
        starting = phase == START
        _put(self.step_loss, starting, self.stats[:, 0])
        converged = self.stats[:, 2] <= self.tolerance_grad
        _put(phase, starting & converged, END)
        _put(self.iter, starting, 0)
        _put(self.evals, starting, 1)
        direction = direction | (starting & ~converged)

        # ---- an iteration: the direction (the arithmetic of BatchedLBFGS's compiled CPU directions,
        # ``_directions_cpu``), then the line search's first trial, or the step's end where
        # g.d > -tolerance_change
        _put(self.n_iter, direction, self.n_iter + 1)
        _put(self.iter, direction, self.iter + 1)
        first = direction & (self.n_iter == 1)
        g = self.g
        y, s = g - self.prev_g, self.d * self.t[:, None]
        ys = _dot(y, s)
        keep = direction & (ys > self.tolerance_ys) & ~first
        _put(self.S, keep, torch.cat([self.S[:, 1:], s[:, None]], 1))
        _put(self.Y, keep, torch.cat([self.Y[:, 1:], y[:, None]], 1))
        _put(self.rho, keep, torch.cat([self.rho[:, 1:], (1.0 / ys)[:, None]], 1))
        _put(self.H_diag, keep, ys / _dot(y, y))
        for history in (self.S, self.Y, self.rho):
            _put(history, first, 0.0)
        _put(self.H_diag, first, 1.0)
        _put(self.d, direction, torch.where(first[:, None], -g, _two_loop(g, self.S, self.Y, self.rho, self.H_diag)))
        _put(self.prev_g, direction, g)
        gtd, d_max = _dot(g, self.d), self.d.abs().amax(1)
        _put(self.prev_loss, direction, self.stats[:, 0])
        t0 = torch.where(first, _min(1.0, 1.0 / self.stats[:, 1]) * self.lr, self.lr)
        flat = direction & (gtd > -tol_change)
        _put(self.t, flat, t0)
        _put(phase, flat, END)
        begin = direction & ~(gtd > -tol_change)
        _put(phase, begin, BRACKET)
        _put(self.tc, begin, t0)
        _put(self.gtd0, begin, gtd)
        _put(self.dnorm, begin, d_max)
        _put(self.tp, begin, 0.0)
        _put(self.fp, begin, self.stats[:, 0])
        _put(self.gtdp, begin, gtd)
        _put(self.slotp, begin, -1)
        _put(self.ls_iter, begin, -1)
        self.finished.copy_((phase == IDLE).all())
