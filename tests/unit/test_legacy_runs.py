"""Runs written by the earlier pipeline load, and draw every figure their columns allow (issue 14).

Each test builds its older layout itself (tests/run_builders.py has the older DataFrames).
"""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from run_builders import current_frames, no_rendering, older_frames  # noqa: F401 (a fixture)

from utils import RunError, list_runs, load_run
from utils.analysis.stats import best_per_dataset
from visualization.__main__ import main as visualize

ROOT = Path(__file__).resolve().parents[2]
TS, TS2 = "20251024_143052", "20251025_090000"
ESSENTIAL = {"section", "timestamp", "epochs", "device", "seed", "dtype", "engine"}


def write_frames(folder, frames, name="{m}", attrs=None, section="section1_1", ts=TS):
    for m, df in frames.items():
        df = df.copy()
        df.attrs = {**attrs, "model_type": m} if attrs is not None else {}
        df.to_pickle(folder / f"{section}_{ts}_{name.format(m=m)}.pkl")


def one_line(err):
    assert "\n" not in str(err.value)
    return str(err.value)


def test_checkpoint_metadata_sidecar_is_ignored_with_a_note(tmp_path, capsys):
    attrs = {"section": "section1_1", "timestamp": TS, "epochs": 100, "device": "cuda", "kan_threshold_time": 3.5}
    write_frames(tmp_path, older_frames(), attrs=attrs)
    sidecar = {"kan": {0: {"at_threshold": {"epoch": 40, "dense_mse": 1e-3}, "final": {"epoch": 99}}}}
    for ts in (TS, TS2):  # the newer timestamp has nothing but a sidecar: it is not a run
        (tmp_path / f"section1_1_{ts}_checkpoint_metadata.pkl").write_bytes(pickle.dumps(sidecar))
    (tmp_path / f"section1_1_{TS}_mlp.parquet").write_bytes(b"PAR1")  # other files of the run, not pickles
    assert list_runs("section1_1", results_dir=tmp_path) == [TS]
    results, meta = load_run("section1_1", results_dir=tmp_path)
    assert list(results) == ["mlp", "siren", "kan", "kan_pruning"]
    assert meta == {"section": "section1_1", "timestamp": TS, "epochs": 100, "device": "cuda", "seed": None,
                    "dtype": None, "engine": None, "kan_threshold_time": 3.5}
    assert results["kan"].attrs["model_type"] == "kan" and results["kan"].attrs["seed"] is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ignoring 2 files" in err
    assert f"section1_1_{TS}_checkpoint_metadata.pkl" in err and f"section1_1_{TS}_mlp.parquet" in err


@pytest.mark.parametrize("metadata,epochs", [(None, 5), ("attrs", 7), ("json", 9)])
def test_epochs_in_the_file_name(tmp_path, metadata, epochs):
    frames = older_frames()
    attrs = {"section": "section1_1", "timestamp": TS, "epochs": 7, "device": "cpu"} if metadata == "attrs" else None
    write_frames(tmp_path, frames, name="e5_{m}", attrs=attrs)
    if metadata == "json":
        (tmp_path / f"section1_1_{TS}_meta.json").write_text(json.dumps({"meta": {"epochs": 9, "device": "cpu"}}))
    assert list_runs("section1_1", results_dir=tmp_path) == [TS]
    results, meta = load_run("section1_1", TS, results_dir=tmp_path)
    assert list(results) == ["mlp", "siren", "kan", "kan_pruning"]  # not e5_kan, and kan is not kan_pruning
    assert len(results["kan_pruning"]) == len(frames["kan_pruning"]) and len(results["kan"]) == len(frames["kan"])
    assert set(meta) == ESSENTIAL and meta["epochs"] == epochs  # the name only when no metadata says
    assert meta["device"] == (None if metadata is None else "cpu") and meta["seed"] is None
    assert all(df.attrs == {**meta, "model_type": m} for m, df in results.items())


def test_two_files_for_one_model_type_is_an_error(tmp_path):
    write_frames(tmp_path, {"kan": older_frames()["kan"]}, name="e5_{m}")
    write_frames(tmp_path, {"kan": older_frames()["kan"]})
    with pytest.raises(RunError) as e:
        load_run("section1_1", TS, results_dir=tmp_path)
    assert "2 files for model type kan" in one_line(e) and f"section1_1_{TS}_e5_kan.pkl" in str(e.value)


def test_single_file_run(tmp_path, capsys):
    frames = older_frames()
    (tmp_path / f"section1_1_{TS}.pkl").write_bytes(pickle.dumps({**frames, "grids": [3, 5]}))
    (tmp_path / f"section1_1_{TS}.json").write_text(json.dumps(
        {"results": {"mlp": "..."}, "meta": {"epochs": 50, "device": "cpu", "grids": [3, 5]}}))
    assert list_runs("section1_1", results_dir=tmp_path) == [TS]
    results, meta = load_run("section1_1", results_dir=tmp_path)
    assert meta == {"section": "section1_1", "timestamp": TS, "epochs": 50, "device": "cpu", "seed": None,
                    "dtype": None, "engine": None}
    assert list(results) == ["mlp", "siren", "kan", "kan_pruning"]
    assert results["siren"].attrs == {**meta, "model_type": "siren"}
    pd.testing.assert_frame_equal(results["mlp"], frames["mlp"].assign(seed=0))  # repaired on load: one seed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"section1_1_{TS}.pkl['grids']" in err


@pytest.mark.parametrize("content,what", [
    ([1, 2, 3], "holds a list"),
    ({"mlp": {0: {2: {"tanh": {"train": [1.0]}}}}}, "its 'mlp' is a dict"),
    ({"adam": pd.DataFrame({"a": [1]})}, "its keys are adam"),
])
def test_single_file_run_of_an_unsupported_format(tmp_path, content, what):
    path = tmp_path / f"section1_1_{TS}.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(RunError) as e:
        load_run("section1_1", results_dir=tmp_path)
    assert one_line(e).startswith(f"{path}: unsupported format") and what in str(e.value)


def test_older_columns_are_usable(tmp_path):
    frames = older_frames()
    frames["mlp"]["note"] = [np.array("text")] * len(frames["mlp"])  # 0-d, but not a number: left alone
    write_frames(tmp_path, frames, name="e4_{m}")
    results, _ = load_run("section1_1", results_dir=tmp_path)
    assert results["mlp"]["note"].dtype == object and results["mlp"]["note"].iloc[0] == np.array("text")
    for c in ("train_loss", "test_loss"):  # 0-d numpy arrays became numbers
        assert results["kan"][c].dtype == np.float64 and results["kan_pruning"][c].dtype == np.float64
    assert results["kan"]["test_loss"].iloc[0] == float(older_frames()["kan"]["test_loss"].iloc[0])
    table = best_per_dataset(results)  # no dense_max_err, no stage: the summary still works
    assert len(table) == 8 and "dense_max_err" not in table
    pruned = table[table["family"] == "kan_pruning"]
    assert (pruned["num_params"] == 50).all()  # the pruned row (the KAN rows before it have 80 and 100)


def test_figures_of_an_older_run(tmp_path):
    """Every figure its columns allow, one line per skipped figure naming what it lacks, no traceback."""
    write_frames(tmp_path, older_frames(), name="e4_{m}")
    (tmp_path / f"section1_1_{TS}_checkpoint_metadata.pkl").write_bytes(pickle.dumps({"kan": {}}))
    out = tmp_path / "figs"
    proc = subprocess.run([sys.executable, "-m", "visualization", "section1_1", "--results-dir", str(tmp_path),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    skipped = sorted(line for line in proc.stderr.splitlines() if "skipped" in line)
    assert len(skipped) == 4, proc.stderr
    for line, figure in zip(skipped, ("curves_walltime", "efficiency", "fits", "time_to_accuracy")):
        assert line.startswith(f"visualization: skipped {figure}: "), line
    assert "needs column 'wall_time'" in skipped[0] + skipped[1] + skipped[3]
    assert "needs the run's models" in skipped[2] and "saved no models" in skipped[2]
    drawn = {p.name for p in out.iterdir()}
    for name in ("curves_epoch", "pareto", "grid_extension_steps", "grid_extension_G"):
        assert {f"{name}.png", f"{name}.pdf"} <= drawn and (out / f"{name}.png").stat().st_size > 1000, name
    assert {"best_per_dataset.csv", "best_per_dataset.md", "best_per_dataset.tex"} <= drawn
    assert not {"fits.png", "curves_walltime.png"} & drawn
    table = pd.read_csv(out / "best_per_dataset.csv")
    assert len(table) == 8 and "max error" not in table.columns


def test_figures_of_an_older_pde_run_without_h1(tmp_path, capsys, no_rendering):
    write_frames(tmp_path, older_frames("section1_2", pde_columns=("dense_rel_l2",)), section="section1_2",
                 attrs={"epochs": 4, "device": "cpu"})
    assert visualize(["section1_2", "--results-dir", str(tmp_path), "--out", str(tmp_path / "f")]) == 0
    err = capsys.readouterr().err
    assert "skipped pde_training: needs column 'h1_error', which mlp, siren, kan, kan_pruning lack" in err
    assert (tmp_path / "f" / "pareto.png").exists() and not (tmp_path / "f" / "pde_training_steps.png").exists()


def test_current_frames_draw_everything_but_the_models(tmp_path, capsys, no_rendering):
    """The builder's current schema is complete: only the figures drawing models are skipped."""
    from utils import save_run
    save_run(current_frames(), "section1_1", results_dir=tmp_path, epochs=6, device="cpu", seed=0)
    assert visualize(["section1_1", "--results-dir", str(tmp_path), "--out", str(tmp_path / "f")]) == 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"visualization: skipped fits: needs the run's models "
                                        f"({tmp_path}/section1_1_{list_runs('section1_1', tmp_path)[0]}_models.pt: "
                                        f"this run saved no models)"]
    assert (tmp_path / "f" / "curves_walltime.png").exists()
