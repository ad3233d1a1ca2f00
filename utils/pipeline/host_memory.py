"""Keep freed memory in the process instead of handing it back to the operating system (glibc only).

A PINN evaluation at 10,000 points allocates and frees tensors of 0.8-1.6 MB dozens of times. With
glibc's defaults such blocks are mapped fresh from the kernel (or the heap top is trimmed after
every evaluation), and each reuse pays a page fault per 4 KB: a section 1.3 MLP ensemble spent
10-12 s of 60 in the kernel, with about 3 million minor faults (measured, two such ensembles side
by side on this 2-core machine). Serving them from the heap instead made the same ensembles 1.13x
(MLP, depth 6) and 1.21x (SIREN, depth 6) faster, and ``section1_3.py --models mlp siren --epochs
10`` 1.12x (69.8 s -> 62.5 s, kernel time 14.8 s -> 2.2 s), with bit-identical results: it changes
where memory comes from, never what is computed. A whole section 1.3 run does not change (740 s,
729 s before): its KAN ensembles run first and raise glibc's own adaptive threshold for the
ensembles after them. Blocks above 32 MB (a 45-member KAN ensemble's metrics, e.g. section 1.1 with
5 seeds) would still be mapped afresh each time, so mmap is off altogether: that ensemble ran 1.21x
faster (32.1 s -> 26.4 s over 8 epochs, kernel time 8.6 s -> 2.0 s) with a peak of 2.1 GB instead
of 1.9 GB. The price is that a process keeps up to its peak tensor memory until it exits.
"""
from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
_MMAP_THRESHOLD = 32 << 20   # glibc's largest threshold ...
_MMAP_MAX = 0                # ... and no mmap at all: every block comes from the heap
_TRIM_THRESHOLD = 1 << 30    # give the heap top back only when 1 GB of it is free
_TOP_PAD = 64 << 20          # grow the heap 64 MB at a time

_done = False


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed blocks (once per process); False where there is no glibc."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # macOS, Windows, musl: their allocators, left as they are
        return False
    settings = ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_MMAP_MAX, _MMAP_MAX), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
                (_M_TOP_PAD, _TOP_PAD))
    _done = all(mallopt(param, value) == 1 for param, value in settings)
    return _done
