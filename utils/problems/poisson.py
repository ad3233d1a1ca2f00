"""Poisson problems defined by their exact solution: the equation, its domain, u and f.

An earlier pipeline "solved" these sections by regressing the forcing f. Here each problem is the
equation ``sign * Lap u = f`` on a box with u = 0 on its boundary, and the default (``pinn``) mode
trains only from the equation, as in the KAN paper (section 3.4):

    loss = alpha * mean over interior points of (sign * Lap u - f)^2 + mean over boundary points of u^2

with the exact u used only to measure errors. ``supervised`` mode fits u from samples instead, for
comparison. Sign: ``-Lap u = f`` (sign = -1) for the first six problems; the KAN paper's problem
``poisson_2d_spec`` is written ``Lap u = f`` (sign = +1) on [-1, 1]^2. Like the regression targets,
these are written with tensor methods only, so the section registry loads without torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

PI = math.pi


def sin(t):
    return t.sin()


def cos(t):
    return t.cos()


@dataclass(frozen=True)
class PoissonPDE:
    domain: tuple            # ((lo, hi), ...) per dimension
    u: Callable              # exact solution, (n, d) -> (n, 1)
    f: Callable              # forcing
    sign: int = -1           # the equation is sign * Lap u = f

    @property
    def dim(self) -> int:
        return len(self.domain)


def _x(p, i):
    return p[:, i:i + 1]


PROBLEMS = {
    "poisson_1d_sin": PoissonPDE(((0.0, 1.0),), lambda p: sin(PI * _x(p, 0)),
                                 lambda p: PI ** 2 * sin(PI * _x(p, 0))),
    "poisson_1d_poly": PoissonPDE(((0.0, 1.0),), lambda p: _x(p, 0) * (1 - _x(p, 0)),
                                  lambda p: _x(p, 0).new_full((len(p), 1), 2.0)),
    "poisson_1d_highfreq": PoissonPDE(((0.0, 1.0),), lambda p: sin(4 * PI * _x(p, 0)),
                                      lambda p: 16 * PI ** 2 * sin(4 * PI * _x(p, 0))),
    "poisson_2d_sin": PoissonPDE(((0.0, 1.0), (0.0, 1.0)), lambda p: sin(PI * _x(p, 0)) * sin(PI * _x(p, 1)),
                                 lambda p: 2 * PI ** 2 * sin(PI * _x(p, 0)) * sin(PI * _x(p, 1))),
    "poisson_2d_poly": PoissonPDE(((0.0, 1.0), (0.0, 1.0)),
                                  lambda p: _x(p, 0) * (1 - _x(p, 0)) * _x(p, 1) * (1 - _x(p, 1)),
                                  lambda p: 2 * _x(p, 1) * (1 - _x(p, 1)) + 2 * _x(p, 0) * (1 - _x(p, 0))),
    "poisson_2d_highfreq": PoissonPDE(((0.0, 1.0), (0.0, 1.0)),
                                      lambda p: sin(4 * PI * _x(p, 0)) * sin(4 * PI * _x(p, 1)),
                                      lambda p: 32 * PI ** 2 * sin(4 * PI * _x(p, 0)) * sin(4 * PI * _x(p, 1))),
    "poisson_2d_spec": PoissonPDE(((-1.0, 1.0), (-1.0, 1.0)),
                                  lambda p: sin(PI * _x(p, 0)) * sin(PI * _x(p, 1) ** 2),
                                  lambda p: (-PI ** 2 * (1 + 4 * _x(p, 1) ** 2) * sin(PI * _x(p, 0)) * sin(PI * _x(p, 1) ** 2)
                                             + 2 * PI * sin(PI * _x(p, 0)) * cos(PI * _x(p, 1) ** 2)),
                                  sign=+1),
}
