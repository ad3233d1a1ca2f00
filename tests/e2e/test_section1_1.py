"""section1_1.py end to end, as a user runs it (issues 3, 6, 20 and 21)."""
import math
import time

import pandas as pd
import pytest
import torch
from scripts import ROOT, section

from utils import load_run
from utils.analysis.stats import best_per_dataset, stage_ends
from utils.engine import training
from utils.families import FAMILIES, model_key
from utils.pipeline.sweep import Ensemble, Task
from utils.problems.data import RegressionProblem
from utils.problems.functions import FUNCTIONS_1D


def test_quick_run_writes_one_pickle_per_family_with_attrs(shared_run):
    res_dir, stdout = shared_run("section1_1")
    results, meta = load_run("section1_1", results_dir=res_dir)
    ts = meta["timestamp"]
    assert sorted(p.name for p in res_dir.iterdir()) == sorted(
        [f"section1_1_{ts}_{m}.pkl" for m in ("mlp", "siren", "kan", "kan_pruning")] + [f"section1_1_{ts}_models.pt"])
    for family, df in results.items():  # three seeds: the run's seeds are its seed column, not an attr
        assert df.attrs == {"section": "section1_1", "timestamp": ts, "epochs": 6, "device": "cpu",
                            "seed": None, "dtype": "float64", "model_type": family, "engine": "host"}
        assert sorted(df["seed"].unique()) == [0, 1, 2]
    # derivable values come from the data, as in the metadata note
    mlp_df, kan_df = results["mlp"], results["kan"]
    assert sorted(mlp_df["depth"].unique()) == [2, 3]
    assert sorted(mlp_df["activation"].unique()) == ["relu", "silu", "tanh"]
    assert sorted(kan_df["grid_size"].unique()) == [3, 5, 10]
    sin_names = mlp_df[mlp_df["dataset_name"].str.startswith("sin_freq")]["dataset_name"].unique()
    assert sorted(int(n.replace("sin_freq", "")) for n in sin_names) == [1, 2]
    assert mlp_df["dataset_idx"].nunique() == 3
    # the summary table (with its precision) and the saved paths are printed
    assert "Best dense MSE per dataset and family (trained in float64)" in stdout
    assert str(res_dir / f"section1_1_{ts}_mlp.pkl") in stdout
    # pykan wrote nothing into the working directory
    assert sorted(p.name for p in res_dir.parent.iterdir()) == ["results"]


def test_rows_hold_true_per_epoch_values(shared_run):
    results, _ = load_run("section1_1", results_dir=shared_run("section1_1")[0])
    required = {"dataset_idx", "dataset_name", "epoch", "train_loss", "test_loss", "dense_mse",
                "dense_max_err", "wall_time", "num_params", "seed"}
    for family, df in results.items():
        assert required <= set(df.columns), family
        for _, g in df.groupby(["dataset_idx", "seed"] + [c for c in ("depth", "activation") if c in df]):
            assert list(g["epoch"]) == list(range(1, 7))
            assert g["wall_time"].is_monotonic_increasing
            # not one final value copied onto every epoch (a dead ReLU network stays where it started)
            assert g["dense_mse"].nunique() > 1 or g["train_loss"].nunique() == 1
    kan = results["kan"][(results["kan"]["dataset_idx"] == 0) & (results["kan"]["seed"] == 0)]
    assert list(kan["grid_size"]) == [3, 3, 5, 5, 10, 10]
    assert list(kan["num_params"]) == [10 * (g + 5) for g in kan["grid_size"]]
    kp = results["kan_pruning"]
    kp = kp[(kp["dataset_idx"] == 0) & (kp["seed"] == 0)]
    assert list(kp["stage"])[:1] == ["sparsify"] and set(kp["stage"][1:]) == {"retrain"}
    assert not kp["is_pruned"].iloc[0] and kp["is_pruned"].iloc[1:].all()
    # the pruned-KAN run is its own run, not a copy of the plain KAN run
    assert not kp["dense_mse"].reset_index(drop=True).equals(kan["dense_mse"].reset_index(drop=True))


def test_every_saved_model_reproduces_its_row(shared_run):
    """Each saved model (every MLP and SIREN, each grid stage of KAN and pruned KAN) evaluated afresh on
    its dataset reproduces the dense MSE recorded in the row that ends its stage, to 1e-6 relative;
    KANs through pykan's own forward, in float64 as the rows are. Snapshots are copies: training at
    the next grid cannot change an earlier grid's model (pykan's refine shares scale tensors with the
    model it refines)."""
    results, _, models = load_run("section1_1", results_dir=shared_run("section1_1")[0], load_models=True)
    checked = 0
    for family, df in results.items():
        for _, row in stage_ends(df, family).iterrows():
            model = models[family][row["dataset_name"]][model_key(family, row)]
            p = RegressionProblem(row["dataset_name"], FUNCTIONS_1D[row["dataset_name"]], seed=int(row["seed"]),
                                  dataset_idx=int(row["dataset_idx"]))
            with torch.no_grad():
                pred = model.double()(p.dense_x)
            ours = ((pred - p.dense_y) ** 2).mean().item()
            assert ours == pytest.approx(row["dense_mse"], rel=1e-6), (family, row["dataset_name"], model_key(family, row))
            checked += 1
    kan_stages = results["kan"].groupby(["dataset_name", "grid_size", "seed"]).ngroups
    assert checked == 3 * 3 * (6 + 2) + kan_stages + len(stage_ends(results["kan_pruning"], "kan_pruning"))


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "--epochs: must be at least 1"),
    (["--epochs", "ten"], "expected a whole number"),
    (["--models", "transformer"], "invalid choice"),
    (["--workers", "0"], "--workers: must be at least 1"),
])
def test_bad_arguments_one_line_exit_2(tmp_path, args, message):
    proc = section("section1_1", *args, "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_one_line_exit_2_nothing_written(tmp_path):
    proc = section("section1_1", "--device", "cuda", "--quick", "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and list(tmp_path.iterdir()) == []


def test_help_answers_before_torch_is_imported(tmp_path):
    """--help lists every option, in well under a second: parsing imports neither torch nor pandas."""
    t0 = time.perf_counter()
    proc = section("section1_1", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and time.perf_counter() - t0 < 5  # generous: a loaded CI machine
    for opt in ("--epochs", "--device", "--dtype", "--seed", "--results-dir", "--quick", "--models", "--workers",
                "--scheduler"):
        assert opt in proc.stdout
    import subprocess
    import sys
    probe = ("import sys; sys.argv = ['section1_1.py', '--help']; import runpy\n"
             "try:\n    runpy.run_path('section1_1.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def _nan_problem():
    fn = lambda x: torch.where(x < 0.5, torch.sin(x), torch.full_like(x, float("nan")))  # noqa: E731
    return RegressionProblem("broken", fn, seed=0, dataset_idx=0)


def _train_alone(family, config, problem, epochs, grids=()):
    task = Task("section1_1", family, 0, "broken", 0, epochs, "cpu", tuple(config.items()), grids)
    base = [{"dataset_idx": 0, "dataset_name": "broken", "seed": 0, **config}]
    rows, _ = getattr(training, FAMILIES[family].trainer)(Ensemble((task,)), [problem], base, config)
    return pd.DataFrame(rows[0])


def test_nan_divergence_is_recorded_and_training_stops():
    p = _nan_problem()
    mlp = _train_alone("mlp", {"width": 5, "depth": 2, "activation": "tanh"}, p, 5)
    assert len(mlp) == 1 and math.isnan(mlp["train_loss"].iloc[0])
    kan = _train_alone("kan", {"width": 5}, p, 6, (3, 5, 10))
    assert len(kan) == 1 and math.isnan(kan["dense_mse"].iloc[0])
    table = best_per_dataset({"mlp": mlp})
    assert table["any_diverged"].all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_dataset_alone_gives_the_sweeps_rows(shared_run, tmp_path, dtype):
    """--datasets sin_freq1 trains the same models as the whole sweep's sin_freq1 rows, every column but
    wall_time, bit for bit: a member's numbers do not depend on what else is in the sweep (silu MLPs
    did, by their place in the ensemble). float64: against the shared run's sin_freq1 rows."""
    frames = {}
    seeds = ["0", "1", "2"] if dtype == "float64" else ["0"]  # float64: the shared run's seeds
    runs = [("one", ["sin_freq1"])] + ([("all", ["sin_freq1", "piecewise"])] if dtype == "float32" else [])
    for name, subset in runs:
        proc = section("section1_1", "--quick", "--seeds", *seeds, "--models", "mlp", "siren", "--dtype", dtype,
                       "--workers", "1", "--results-dir", str(tmp_path / name), "--no-progress", "--datasets",
                       *subset, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        frames[name], meta = load_run("section1_1", results_dir=tmp_path / name)
        assert meta["dtype"] == dtype and f"(trained in {dtype})" in proc.stdout
    if dtype == "float64":
        frames["all"] = load_run("section1_1", results_dir=shared_run("section1_1")[0])[0]
    for family in ("mlp", "siren"):
        whole = frames["all"][family]
        whole = whole[whole["dataset_name"] == "sin_freq1"].drop(columns="wall_time").reset_index(drop=True)
        alone = frames["one"][family].drop(columns="wall_time").reset_index(drop=True)
        assert len(alone) == (2 * 3 if family == "mlp" else 2) * len(seeds) * 6
        pd.testing.assert_frame_equal(alone, whole, check_exact=True)
