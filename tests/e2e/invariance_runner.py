"""Every family and activation, in float32 and float64: a member's rows equal its rows trained alone.

Run as a script (``python tests/invariance_runner.py``) under one ``ATEN_CPU_CAPABILITY``; it prints
one JSON line: the capability torch runs with and every member whose rows differ from its rows
trained alone, as (family, problem kind, dtype, ensemble, position, what differs). The test
(``test_batch_invariance.py``) starts it once per capability this CPU has.

Fifteen members, mixed datasets and seeds, train 3 epochs in ensembles of 15, 9, 3 and 2 (taken
from different places of the list, so members sit at several positions); three of them, at the
first, a middle and the last position and at one to three more, also train alone and are compared
with themselves, every column but ``wall_time``, bit for bit. KAN epochs
include grid updates and two refinements; the pruned KAN's a sparsify step, pruning, and retraining
at two grids. Regression members are section 1.1's (one of them NaN on half the domain: it diverges
at its first step and must not disturb the others); PINN members 1D and 2D Poisson problems.

Sizes are cut to keep the three capabilities in about a minute and a half: 300 training points,
dense grids of 500 (1D) and 20 x 20 points, PINNs with 150 interior and 24 boundary points, 5 LBFGS
iterations per step instead of 20. None of that is what the property depends on (every evaluation is computed the
same way at any size), and none is a whole number of vector lanes, so without ``utils.lanes`` the
runner finds differences here (measured: silu MLPs and KANs, both dtypes, under AVX-512).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from utils import config  # noqa: E402
from utils.engine import training  # noqa: E402
from utils.families import FAMILIES, SETTINGS  # noqa: E402
from utils.pipeline.sweep import Ensemble, Task  # noqa: E402
from utils.problems.data import PoissonProblem, RegressionProblem  # noqa: E402
from utils.problems.functions import FUNCTIONS_1D  # noqa: E402

config.LBFGS_OPTIONS["max_iter"] = 5
config.N_TRAIN = config.N_VAL = config.N_TEST = 300
config.N_DENSE_1D, config.N_DENSE_2D = 500, 20

EPOCHS, GRIDS = 3, (3, 5, 10)
DATASETS_1D = ("sin_freq1", "sin_freq3", "piecewise", "sawtooth", "polynomial")
BROKEN = 9  # a regression member whose target is NaN on half the domain
PDES = {"pinn1d": ("poisson_1d_sin", "poisson_1d_poly", "poisson_1d_highfreq"),
        "pinn2d": ("poisson_2d_sin", "poisson_2d_poly", "poisson_2d_highfreq", "poisson_2d_spec")}
KINDS = ("regression", "pinn1d", "pinn2d")
N_MEMBERS = 15
# (size, first member): windows of the member list, so that members sit at several positions
ENSEMBLES = ((15, 0), (9, 6), (3, 12), (2, 6))
# the members compared with themselves alone, each at several positions: 0, 7 and 14 of 15; 1 and 8 of
# 9 (members 7, 14); 2 of 3 (14); 1 of 2 (7)
WATCHED = (0, 7, 14)
CONFIGS = [("mlp", {"depth": 3, "activation": a}) for a in ("tanh", "relu", "silu")] + [
    ("siren", {"depth": 3}), ("kan", {}), ("kan_pruning", {})]


def members(kind):
    """(name, dataset_idx, seed) of the 15 members: every dataset, three seeds, interleaved."""
    names = DATASETS_1D if kind == "regression" else PDES[kind]
    out = [(names[i % len(names)], i % len(names), i // len(names)) for i in range(N_MEMBERS)]
    if kind == "regression":
        out[BROKEN] = ("broken", 9, 0)
    return out


def broken(x):
    return torch.where(x < 0.5, torch.sin(x), torch.full_like(x, float("nan")))


_PROBLEMS = {}


def problem(kind, name, idx, seed):
    """One member's problem, made once (small PINN point sets: the property does not depend on them)."""
    key = (kind, name, idx, seed)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = (RegressionProblem(name, FUNCTIONS_1D.get(name, broken), seed, idx) if kind == "regression"
                          else PoissonProblem(name, seed, idx, n_interior=150, n_boundary=24))
    return _PROBLEMS[key]


def train(family, config, kind, chosen, dtype):
    """Rows (wall_time dropped) of each chosen member, trained as one ensemble."""
    settings = dict(FAMILIES[family].configs(quick=True, settings=SETTINGS)[-1])
    settings.update(config)
    section = "section1_1" if kind == "regression" else "section1_3"
    tasks = tuple(Task(section, family, i, n, s, EPOCHS, "cpu", tuple(settings.items()),
                       GRIDS if family.startswith("kan") else (), (), dtype) for n, i, s in chosen)
    base = [{"dataset_idx": i, "dataset_name": n, "seed": s, **settings} for n, i, s in chosen]
    trainer = getattr(training, FAMILIES[family].trainer)
    rows, _ = trainer(Ensemble(tasks), [problem(kind, n, i, s) for n, i, s in chosen], base, settings)
    return [pd.DataFrame(r).drop(columns="wall_time") for r in rows]


def differences(family, config, kind, dtype):
    """Every (ensemble, position, member, what differs) where a member is not its alone self."""
    ms = members(kind)
    alone = {c: train(family, config, kind, [ms[c]], dtype)[0] for c in WATCHED}
    out = []
    for size, first in ENSEMBLES:
        chosen = [(first + j) % N_MEMBERS for j in range(size)]
        together = train(family, config, kind, [ms[c] for c in chosen], dtype)
        for position, (c, rows) in enumerate(zip(chosen, together)):
            if c not in alone:
                continue
            try:
                pd.testing.assert_frame_equal(rows, alone[c], check_exact=True)
            except AssertionError as e:
                out.append([size, position, ms[c], " ".join(str(e).split())[:160]])
    return out


def main():
    torch.set_num_threads(1)
    found, runs = [], 0
    for family, settings in CONFIGS:
        for kind in KINDS:
            for dtype in ("float32", "float64"):
                runs += 1
                for d in differences(family, settings, kind, dtype):
                    found.append([family, settings.get("activation", ""), kind, dtype, *d])
    print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "runs": runs, "differences": found}))


if __name__ == "__main__":
    main()
