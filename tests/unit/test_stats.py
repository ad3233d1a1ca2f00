"""utils/stats.py against hand counts on small hand-built runs (issue: seeds and spread).

Every expected number below is worked out by hand in the comments next to it, from the values the
test writes into its DataFrames; none is read back from the code under test.
"""
import math

import pandas as pd
import pytest

from utils.analysis.stats import (best_per_dataset, efficiency, epoch_times, head_to_head, selected_rows,
                                  selection_rule, spread, time_to_accuracy)
from utils.analysis.summary import summary_text
from utils.storage.layouts import repair

NAN, INF = math.nan, math.inf


def run(family, seed, config, epochs, dataset=(0, "d0")):
    """Rows of one training run; ``epochs``: dicts of per-epoch values, numbered from 1."""
    rows = []
    for i, values in enumerate(epochs, start=1):
        row = {"dataset_idx": dataset[0], "dataset_name": dataset[1], "seed": seed, **config, "epoch": i,
               "train_loss": values.get("val", NAN), "test_loss": values.get("val", NAN), "dense_max_err": 0.1,
               "num_params": 16, "wall_time": float(i)}
        row.update(values)
        rows.append(row)
    return rows


def frame(*runs):
    return pd.DataFrame([row for r in runs for row in r])


# MLP on one dataset, 5 seeds, two configurations. depth 2 wins on validation loss, depth 3 on dense error.
MLP_A = {"depth": 2, "activation": "tanh"}
MLP_B = {"depth": 3, "activation": "tanh"}
A_VAL = [0.1, 0.2, 0.3, 0.4, NAN]          # median over 5 with NaN as +inf: 0.3
A_DENSE = [1e-3, 2e-3, 3e-3, 4e-3, NAN]
B_VAL, B_DENSE = [0.5] * 5, [1e-5] * 5      # median val 0.5 > 0.3; median dense 1e-5 < A's 3e-3


def mlp_frame():
    return frame(*[run("mlp", s, MLP_A, [{"val": 1.0, "dense_mse": 1.0}, {"val": A_VAL[s], "dense_mse": A_DENSE[s]}])
                   for s in range(5)],
                 *[run("mlp", s, MLP_B, [{"val": 1.0, "dense_mse": 1.0}, {"val": B_VAL[s], "dense_mse": B_DENSE[s]}])
                   for s in range(5)]).rename(columns={"val": "val_loss"})


SIREN_DENSE = [5e-3, 1e-3, 3e-3, NAN, NAN]


def siren_frame():
    return frame(*[run("siren", s, {"depth": 2}, [{"val": 0.1, "dense_mse": SIREN_DENSE[s]}]) for s in range(5)]
                 ).rename(columns={"val": "val_loss"})


def test_spread_hand_counts():
    # 4 finite values: IQR by linear interpolation, q25 at position 0.75 -> 1 + 0.75 * (2 - 1) = 1.75
    assert spread([1, 2, 3, 4, NAN]) == {"median": 2.5, "lo": 1.75, "hi": 3.25, "kind": "IQR", "seeds": 5,
                                         "diverged": 1}
    # 3 finite values: min-max; an infinite value counts as diverged like NaN
    assert spread([5, 1, 3, INF]) == {"median": 3, "lo": 1, "hi": 5, "kind": "min-max", "seeds": 4, "diverged": 1}
    one = spread([7e-4])
    assert (one["median"], one["lo"], one["hi"], one["kind"], one["diverged"]) == (7e-4, 7e-4, 7e-4, "", 0)
    none = spread([NAN, NAN])
    assert math.isnan(none["median"]) and none["diverged"] == 2 and none["kind"] == ""


def test_configuration_chosen_by_median_validation_loss_reported_by_dense_error():
    t = best_per_dataset({"mlp": mlp_frame()})
    assert len(t) == 1
    r = t.iloc[0]
    assert r["config"] == "depth=2 tanh" and r["selected_by"] == "val_loss"
    # dense of depth 2 over seeds: 1, 2, 3, 4 (e-3) and one NaN
    assert r["dense_mse"] == pytest.approx(2.5e-3)
    assert (r["dense_mse_lo"], r["dense_mse_hi"]) == pytest.approx((1.75e-3, 3.25e-3))
    assert (r["spread"], r["seeds"], r["diverged"], r["any_diverged"]) == ("IQR", 5, 1, True)
    assert r["num_params"] == 16
    assert "lowest median validation loss over seeds" in selection_rule({"mlp": mlp_frame()})


def test_without_validation_loss_the_older_rule_is_used_and_said():
    frames = {"mlp": mlp_frame().drop(columns="val_loss")}
    r = best_per_dataset(frames).iloc[0]
    # by dense error: depth 3 (median 1e-5) beats depth 2 (median of 1, 2, 3, 4 e-3 and +inf = 3e-3)
    assert r["config"] == "depth=3 tanh" and r["selected_by"] == "dense_mse" and r["dense_mse"] == 1e-5
    assert (r["spread"], r["diverged"]) == ("IQR", 0)
    assert "no validation loss" in selection_rule(frames)
    assert "no validation loss" in summary_text(frames)


def test_a_configuration_diverging_in_most_seeds_is_not_chosen():
    # depth 2 has the lowest validation loss in 2 seeds but diverged in 3: its median is +inf
    a = [{"val": 0.01, "dense_mse": 1e-6}, {"val": 0.01, "dense_mse": 1e-6}, {"val": NAN, "dense_mse": NAN},
         {"val": NAN, "dense_mse": NAN}, {"val": NAN, "dense_mse": NAN}]
    df = frame(*[run("mlp", s, MLP_A, [a[s]]) for s in range(5)],
               *[run("mlp", s, MLP_B, [{"val": 0.5, "dense_mse": 2e-2}]) for s in range(5)]).rename(
        columns={"val": "val_loss"})
    r = best_per_dataset({"mlp": df}).iloc[0]
    assert r["config"] == "depth=3 tanh" and r["dense_mse"] == 2e-2 and r["diverged"] == 0 and r["any_diverged"]


def kan_frame():
    """3 seeds through grids 3 (epochs 1-2) and 5 (epochs 3-4); seed 2 diverged at epoch 2 in G=3."""
    runs = []
    for s, g5 in ((0, 2e-4), (1, 4e-4)):
        runs.append(run("kan", s, {}, [
            {"grid_size": 3, "val": 0.3, "dense_mse": 1e-2}, {"grid_size": 3, "val": 0.2, "dense_mse": 1e-3},
            {"grid_size": 5, "val": 0.15, "dense_mse": 1e-3}, {"grid_size": 5, "val": 0.1, "dense_mse": g5}]))
    runs.append(run("kan", 2, {}, [{"grid_size": 3, "val": 0.3, "dense_mse": 1e-2},
                                   {"grid_size": 3, "val": NAN, "dense_mse": NAN}]))
    return frame(*runs).rename(columns={"val": "val_loss"})


def test_kan_grid_stage_a_seed_never_reached_counts_as_diverged():
    t = best_per_dataset({"kan": kan_frame()})
    r = t.iloc[0]
    # G=3: val 0.2, 0.2, NaN -> median 0.2; G=5: 0.1, 0.1, missing -> median 0.1: G=5, over 3 seeds
    assert r["config"] == "G=5" and r["seeds"] == 3 and r["diverged"] == 1
    assert r["dense_mse"] == pytest.approx(3e-4) and (r["dense_mse_lo"], r["dense_mse_hi"]) == (2e-4, 4e-4)
    assert r["spread"] == "min-max" and r["any_diverged"]
    sel = selected_rows({"kan": kan_frame()})
    assert list(sel["seed"]) == [0, 1, 2] and math.isnan(sel["dense_mse"].iloc[2])


def test_pruned_kan_competes_with_its_pruned_stages_only():
    stages = [{"grid_size": 3, "stage": "sparsify", "is_pruned": False, "val": 1e-9, "dense_mse": 1e-9},
              {"grid_size": 3, "stage": "retrain", "is_pruned": True, "val": 0.2, "dense_mse": 2e-3},
              {"grid_size": 5, "stage": "retrain", "is_pruned": True, "val": 0.1, "dense_mse": 1e-3}]
    df = frame(run("kan_pruning", 0, {}, stages)).rename(columns={"val": "val_loss"})
    r = best_per_dataset({"kan_pruning": df}).iloc[0]
    assert r["config"] == "retrain G=5" and r["dense_mse"] == 1e-3


def test_head_to_head_hand_count():
    # per seed, MLP depth 2 vs SIREN: 1e-3 < 5e-3 MLP; 2e-3 > 1e-3 SIREN; 3e-3 = 3e-3 tie;
    # 4e-3 vs NaN MLP (a diverged model loses); NaN vs NaN tie
    h = head_to_head({"siren": siren_frame(), "mlp": mlp_frame()})  # tables order families MLP first
    assert h[["family_a", "family_b", "seeds", "a_wins", "b_wins", "ties"]].values.tolist() == [
        ["mlp", "siren", 5, 2, 1, 2]]
    assert head_to_head({"mlp": mlp_frame()}).empty  # one family: no pairs


def test_head_to_head_counts_common_seeds_only():
    siren = siren_frame()
    h = head_to_head({"mlp": mlp_frame(), "siren": siren[siren["seed"] < 2]})
    # seeds 0 and 1 only: MLP wins seed 0, SIREN seed 1
    assert h[["seeds", "a_wins", "b_wins", "ties"]].values.tolist() == [[2, 1, 1, 0]]


def test_one_seed_run_without_seed_or_validation_columns():
    """An older run: no seed, no val_loss. Loaded, it gets its seed column (``layouts.repair``); one row
    per family as before, by the lowest dense error."""
    df = frame(run("mlp", 0, MLP_A, [{"dense_mse": 3e-3}]), run("mlp", 0, MLP_B, [{"dense_mse": 2e-3}]))
    df = df.drop(columns=["seed", "val"], errors="ignore")
    repair(df)
    t = best_per_dataset({"mlp": df})
    r = t.iloc[0]
    assert len(t) == 1 and r["config"] == "depth=3 tanh" and r["dense_mse"] == 2e-3
    assert (r["seeds"], r["diverged"], r["spread"], r["dense_mse_lo"], r["dense_mse_hi"]) == (1, 0, "", 2e-3, 2e-3)
    assert {"dataset_idx", "dataset", "family", "config", "num_params", "dense_mse", "dense_max_err",
            "any_diverged"} <= set(t.columns)
    text = summary_text({"mlp": df})
    assert "Best dense MSE" in text and "spread" not in text.splitlines()[1] and "2.000e-03" in text


def test_time_to_accuracy_hand_count():
    # selected MLP (depth 2 by validation loss), seeds 0-2, wall time 1 s per epoch + 0.5 s for seed 1
    traj = {0: [2e-2, 8e-4, 9e-6], 1: [5e-4, 2e-3, 3e-3], 2: [1e-1, 5e-2, 2e-2]}
    runs = [run("mlp", s, MLP_A, [{"val": 0.1, "dense_mse": d, "wall_time": i + 1 + 0.5 * s}
                                  for i, d in enumerate(traj[s])]) for s in traj]
    runs += [run("mlp", s, MLP_B, [{"val": 0.9, "dense_mse": 1e-9}] * 3) for s in traj]
    t = time_to_accuracy({"mlp": frame(*runs).rename(columns={"val": "val_loss"})})
    r = t.iloc[0]
    assert r["config"] == "depth=2 tanh" and r["seeds"] == 3
    # 1e-3: seed 0 at epoch 2 (2.0 s), seed 1 at epoch 1 (1.5 s), seed 2 never: medians of (2, 1, inf)
    # and (2.0, 1.5, inf) are 2 and 2.0
    assert (r["epochs_to_1e-03"], r["seconds_to_1e-03"], r["reached_1e-03"]) == (2.0, 2.0, 2)
    # 1e-5: only seed 0 (epoch 3): the median of (3, inf, inf) is inf, "not reached"
    assert (r["epochs_to_1e-05"], r["seconds_to_1e-05"], r["reached_1e-05"]) == (INF, INF, 1)


def test_time_to_accuracy_kan_stops_at_its_selected_stage_and_pruned_kan_counts_from_the_start():
    # KAN: selected stage G=3 (val 0.1 < 0.2); the run reaches 1e-5 only in G=5, after its selected stage
    kan = frame(run("kan", 0, {}, [{"grid_size": 3, "val": 0.1, "dense_mse": 1e-4},
                                   {"grid_size": 5, "val": 0.2, "dense_mse": 1e-6}]))
    kan = kan.rename(columns={"val": "val_loss"})
    r = time_to_accuracy({"kan": kan}).iloc[0]
    assert r["config"] == "G=3" and r["epochs_to_1e-03"] == 1 and r["epochs_to_1e-05"] == INF
    # pruned KAN: the sparsify epoch reaches 1e-3 first, but only the pruned network counts: epoch 2, 2 s
    kp = frame(run("kan_pruning", 0, {}, [
        {"grid_size": 3, "stage": "sparsify", "is_pruned": False, "val": 1e-4, "dense_mse": 1e-4},
        {"grid_size": 3, "stage": "retrain", "is_pruned": True, "val": 1e-4, "dense_mse": 5e-4}])
    ).rename(columns={"val": "val_loss"})
    r = time_to_accuracy({"kan_pruning": kp}).iloc[0]
    assert (r["epochs_to_1e-03"], r["seconds_to_1e-03"]) == (2, 2.0)


def test_epoch_times_and_efficiency_hand_count():
    # two MLP runs: cumulative wall times 1, 3 and 2, 2.5 -> epoch times 1, 2, 2, 0.5
    runs = [run("mlp", 0, MLP_A, [{"wall_time": 1.0, "dense_mse": 1e-3}, {"wall_time": 3.0, "dense_mse": 1e-3}]),
            run("mlp", 1, MLP_A, [{"wall_time": 2.0, "dense_mse": 1e-3}, {"wall_time": 2.5, "dense_mse": 1e-3}])]
    df = frame(*runs)
    assert sorted(epoch_times(df, "mlp")) == [0.5, 1.0, 2.0, 2.0]
    e = efficiency({"mlp": df}).iloc[0]
    # mean 5.5 / 4 = 1.375; squared deviations .140625 + .390625 + .390625 + .765625 = 1.6875, / 3 -> std 0.75
    assert e["epoch_seconds_mean"] == pytest.approx(1.375) and e["epoch_seconds_std"] == pytest.approx(0.75)
    assert (e["configurations"], e["seeds"], e["runs"], e["epochs"], e["params_min"]) == (1, 2, 2, 4, 16)
    # a KAN run's epochs are one run through all its grid stages: the G=5 epoch is 4 - 1 = 3 s
    kan = frame(run("kan", 0, {}, [{"grid_size": 3, "wall_time": 1.0}, {"grid_size": 5, "wall_time": 4.0}]))
    assert list(epoch_times(kan, "kan")) == [1.0, 3.0]
    assert efficiency({"kan": kan}).iloc[0]["configurations"] == 2


def test_summary_text_shows_median_spread_and_rule():
    text = summary_text({"mlp": mlp_frame(), "siren": siren_frame()})
    lines = text.splitlines()
    assert "median over 5 seeds" in lines[0]
    mlp = next(line for line in lines if " MLP " in line)
    assert "2.500e-03" in mlp and "1.750e-03 .. 3.250e-03" in mlp and "1/5" in mlp
    siren = next(line for line in lines if " SIREN " in line)
    assert "3.000e-03" in siren and "1.000e-03 .. 5.000e-03" in siren and "2/5" in siren
    assert sum(line.startswith("Selection:") for line in lines) == 1
