"""Why a member's numbers never depend on its ensemble: every point axis is padded to whole vector lanes.

torch's CPU kernels run a vectorized body over whole SIMD registers (two at a time) and finish the
last few elements of a tensor with a scalar loop. For exactly rounded operations (+, -, *, /, sqrt,
comparisons) both give the same bits; for transcendental ones they need not: silu, sigmoid and
silu's backward compute their tail with the scalar libm and their body with a vectorized exp
(measured: on a (9, 5, 1000) float32 input under AVX2 or AVX-512, a few elements differ from the
same member computed alone). Which elements fall into the tail depends on the tensor's total
length, so a member's bits depended on how many members came before it, and on the machine's
instruction set (AVX-512 registers are twice as wide as AVX2's).

Padding every member's points to a multiple of ``LANES`` elements makes the question moot by
construction: each member's slab then starts on a lane boundary and fills whole registers, so every
element goes through the vectorized body in any ensemble and alone, whatever kernel set torch
dispatches to (``ATEN_CPU_CAPABILITY`` default, avx2, avx512) and whatever library computes the
function. 64 elements cover the widest case, float32 under AVX-512 with two registers per step (32),
with room to spare. The pad repeats a real point, so it is finite wherever the member is, and it is
cut off before anything is summed over points.
"""
from __future__ import annotations

import torch

LANES = 64


def padded_length(n: int) -> int:
    return -(-n // LANES) * LANES


def pad_points(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x with its axis ``dim`` (the points) extended to a multiple of LANES by repeating its last point.

    Always returns a new contiguous tensor, so what follows runs on the layout it expects.
    """
    n = x.shape[dim]
    extra = padded_length(n) - n
    if extra == 0:
        return x.contiguous()
    last = x.narrow(dim, n - 1, 1)
    return torch.cat([x, last.expand(*[extra if d == dim % x.dim() else -1 for d in range(x.dim())])], dim)


def lanewise(fn, t: torch.Tensor) -> torch.Tensor:
    """fn (an elementwise function) applied to each member's slab t[b] padded to whole lanes: for the
    small per-member tensors (a KAN layer's edge statistics) that have no point axis to pad."""
    flat = t.reshape(t.shape[0], -1)
    return fn(pad_points(flat, 1))[:, :flat.shape[1]].reshape(t.shape)
