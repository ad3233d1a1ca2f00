"""Section 1.1's target functions, on [0, 1].

Written with tensor methods only, so this module (and the section registry that names them) loads
without torch: ``--help`` answers before torch is imported. Every function returns values in its
input's dtype (the data are float64; a Python constant through ``torch.where`` would be float32).
"""
from __future__ import annotations

import math

PI = math.pi


def _piecewise(x):
    level = lambda v: x.new_full(x.shape, v)  # noqa: E731
    return level(-0.5).where(x < 0.3, level(0.3).where(x < 0.6, level(1.0).where(x < 0.8, level(-0.2))))


FUNCTIONS_1D = {
    **{f"sin_freq{nu}": (lambda nu: lambda x: (2 * PI * nu * x).sin())(nu) for nu in range(1, 6)},
    "piecewise": _piecewise,
    "sawtooth": lambda x: x.remainder(0.25) / 0.25,
    "polynomial": lambda x: x ** 3 - 2 * x ** 2 + x,
    "poisson_1d_highfreq": lambda x: 16 * PI ** 2 * (4 * PI * x).sin(),
}
DOMAIN_1D = ((0.0, 1.0),)  # data are sampled and errors measured there only
