"""Members are rows of one matrix: B models' parameters as a (B, P) tensor, and views into it.

The optimizer works on the rows (one per member) and the stacked models read their layers' weights
as views of them, so nothing is copied between the two.
"""
from __future__ import annotations

import math


def row_size(n_params: int) -> int:
    """Columns of a member's parameter row: n_params rounded up to 64 bytes (16 floats).

    Members are rows of one matrix, and torch's CPU kernels take paths that depend on where an
    operand starts (measured: the same member rounds differently as row 0 and as row 1 of a
    46-column matrix). With every row 64-byte aligned a member computes the same bits whatever its
    position and its companions, so an ensemble reproduces its members trained alone. The extra
    columns are never read: their gradient is zero and the optimizer leaves them at zero.
    """
    return -(-n_params // 16) * 16


def row_views(X, shapes):
    """The tensors of the given shapes that the rows of X hold, one after another: (B, *shape) views."""
    out, at = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(X[:, at:at + n].view(X.shape[0], *shape))
        at += n
    return out
