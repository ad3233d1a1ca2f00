"""Running the resident optimizer's ticks: eagerly on the CPU, replayed as CUDA graphs on a GPU.

A tick (``utils.optim.resident.ResidentLBFGS.tick``) is a fixed sequence of tensor operations that
reads nothing on the host, so on a GPU ``check_every`` ticks are captured once as one CUDA graph and
replayed until every member is done: one launch and one small read (the "all done" flag) per
replay instead of hundreds of launches and a dozen blocking round trips per tick. The capture
follows PyTorch's recipe for whole-network capture (warm-up ticks on a side stream first, which are
real ticks of the run); where capture fails (an operation a torch version cannot capture), the same
ticks run eagerly, with a one-line notice.
"""
from __future__ import annotations

import sys
import time

import torch

CHECK_EVERY = 20   # ticks between two looks at the "all done" flag (and per captured graph)
WARMUP = 3         # eager ticks on a side stream before capture
_notified = set()


def run(opt, fun, x, target, device, check_every=CHECK_EVERY, graphs=True) -> float:
    """``target`` steps per member (a (B,) tensor) from x; returns the seconds per tick it took."""
    opt.start(x, target.to(opt.target.device))
    limit = int(target.max()) * (opt.max_iter * (opt.max_ls + 1) + 2) + WARMUP + check_every
    cuda = torch.device(device).type == "cuda"
    t0 = time.perf_counter()
    graph = _capture(opt, fun, check_every) if cuda and graphs else None
    n = 0
    while not opt.finished.item():   # the host's only read
        if n > limit:
            raise RuntimeError("members still running after more ticks than their steps can take")
        if graph is not None:
            graph.replay()
        else:
            for _ in range(check_every):
                opt.tick(fun)
        n += check_every
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / max(int(opt.ticks), 1)


def _capture(opt, fun, check_every):
    """``check_every`` ticks as one CUDA graph, or None where this torch cannot capture them."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP):
            opt.tick(fun)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(check_every):
                opt.tick(fun)
    except RuntimeError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if reason not in _notified:
            _notified.add(reason)
            print(f"note: a tick could not be captured as a CUDA graph ({reason}); running it eagerly",
                  file=sys.stderr)
        return None
    return graph
