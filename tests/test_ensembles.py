"""A member trained inside an ensemble equals the same task trained alone (issues 11 and 12).

Members differ in dataset and seed; one diverges to NaN on its first step. In float64:
regression members (MLP, SIREN, KAN with grid updates and refinements, pruned KAN with its
sparsify stage and pruning) give the same bits inside the ensemble as alone, so any cross-talk
between members shows; PINN members agree to 1e-9 over their first 3 epochs (a KAN's include a
grid update and two refinements; a pruned KAN's are its sparsify stage with a grid update).

Not bit for bit in the PINN case: a few of autograd's reductions on the second-derivative path
still round by a member's position in the batch (measured: a pruned KAN's PINN loss differs by
1e-14 after 4 epochs, and pruning and LBFGS amplify that to order one later).
"""
import math

import pandas as pd
import pytest
import torch

from utils.datasets import FUNCTIONS_1D, RegressionProblem
from utils.families import FAMILIES
from utils.pde import PoissonProblem
from utils.sweep import SETTINGS, Ensemble, Task


pytestmark = pytest.mark.usefixtures("float64")


def broken(x):
    """A target that is NaN on part of the domain: the member's loss is NaN from its first step."""
    return torch.where(x < 0.5, torch.sin(x), torch.full_like(x, float("nan")))


def regression_members():
    members = [("sin_freq1", 0, 0), ("sin_freq1", 0, 1), ("piecewise", 5, 0), ("broken", 9, 0), ("polynomial", 7, 1)]
    problems = [RegressionProblem(n, broken if n == "broken" else FUNCTIONS_1D[n], s, i) for n, i, s in members]
    return members, problems


def pinn_members():
    members = [("poisson_2d_sin", 0, 0), ("poisson_2d_spec", 3, 1), ("poisson_2d_poly", 1, 0)]
    problems = [PoissonProblem(n, s, i, n_interior=300, n_boundary=40) for n, i, s in members]
    return members, problems


def train(family, section, members, problems, epochs, grids, config):
    """The family's trainer on the given members, as the sweep calls it: rows per member."""
    tasks = tuple(Task(section, family, i, n, s, epochs, "cpu", tuple(config.items()),
                       grids if family.startswith("kan") else ()) for n, i, s in members)
    base = [{"dataset_idx": i, "dataset_name": n, "seed": s, **config} for n, i, s in members]
    rows, _ = FAMILIES[family].train(Ensemble(tasks), problems, base, config)
    return [pd.DataFrame(r).drop(columns="wall_time") for r in rows]


def config_of(family):
    return dict(FAMILIES[family].configs(quick=True, settings=SETTINGS)[-1])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_regression_member_equals_alone_bit_for_bit(family):
    members, problems = regression_members()
    config = config_of(family)
    together = train(family, "section1_1", members, problems, 6, (3, 5, 10), config)
    for b in range(len(members)):
        alone = train(family, "section1_1", members[b:b + 1], problems[b:b + 1], 6, (3, 5, 10), config)[0]
        pd.testing.assert_frame_equal(together[b], alone, check_exact=True)
    nan_member = together[3]
    assert len(nan_member) == 1 and math.isnan(nan_member["train_loss"].iloc[0])  # stopped at its NaN step
    assert all(len(together[b]) == 6 and together[b]["train_loss"].notna().all() for b in (0, 1, 2, 4))
    if family == "kan":  # the comparison covers grid updates and refinements
        assert list(together[0]["grid_size"]) == [3, 3, 5, 5, 10, 10]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_pinn_member_equals_alone(family):
    members, problems = pinn_members()
    config = config_of(family)
    epochs = 21 if family == "kan_pruning" else 3  # 21: the first 3 epochs are the sparsify stage
    together = [t.head(3) for t in train(family, "section1_3", members, problems, epochs, (3, 5, 10), config)]
    for b in range(len(members)):
        alone = train(family, "section1_3", members[b:b + 1], problems[b:b + 1], epochs, (3, 5, 10), config)[0].head(3)
        numeric = [c for c in alone.columns if alone[c].dtype.kind == "f"]
        assert list(together[b].columns) == list(alone.columns)
        diff = ((together[b][numeric] - alone[numeric]).abs() / alone[numeric].abs().clip(lower=1e-300)).max().max()
        assert diff < 1e-9, (family, b, diff)
        assert together[b].drop(columns=numeric).equals(alone.drop(columns=numeric))
