"""The run-storage contract of utils/io.py (design.md section 2, issue 2; partial runs, issue 14)."""
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from utils import RunError, list_runs, load_run, save_run
from utils import io as run_io
from utils.models.kan import make_kan
from utils.models.modules import MLP, SIREN
from utils.models.saving import count_params

ROOT = Path(__file__).resolve().parents[2]

DEPTHS, ACTS, GRIDS = [2, 3, 4, 5, 6], ["tanh", "relu", "silu"], [3, 5, 10, 20, 50, 100]
NAMES = [f"sin_freq{i}" for i in range(1, 6)] + ["piecewise", "sawtooth", "polynomial", "poisson_1d_highfreq"]


def fake_results(epochs=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = lambda **extra: {"train_loss": rng.random(), "test_loss": rng.random(), **extra}
    mlp = pd.DataFrame([rows(dataset_idx=i, dataset_name=n, depth=d, activation=a, epoch=e)
                        for i, n in enumerate(NAMES) for d in DEPTHS for a in ACTS for e in range(epochs)])
    siren = pd.DataFrame([rows(dataset_idx=i, dataset_name=n, depth=d, epoch=e)
                          for i, n in enumerate(NAMES) for d in DEPTHS for e in range(epochs)])
    kan = pd.DataFrame([rows(dataset_idx=i, dataset_name=n, grid_size=g, epoch=e)
                        for i, n in enumerate(NAMES) for g in GRIDS for e in range(epochs)])
    kp = kan.assign(stage="retrain", is_pruned=True)
    return {"mlp": mlp, "siren": siren, "kan": kan, "kan_pruning": kp}


def test_round_trip_data_and_attrs_exact(tmp_path):
    results = fake_results()
    ts = save_run(results, "section1_1", epochs=100, device="cpu", seed=7, results_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"section1_1_{ts}_{m}.pkl" for m in results), files  # no JSON, no extras
    loaded, meta = load_run("section1_1", ts, results_dir=tmp_path)
    assert set(loaded) == set(results)
    for m, df in results.items():  # frames without a seed column are one seed, the attrs' (repaired on load)
        pd.testing.assert_frame_equal(loaded[m], df.assign(seed=7))
        assert loaded[m].attrs == {"section": "section1_1", "timestamp": ts, "epochs": 100,
                                   "device": "cpu", "seed": 7, "dtype": None, "engine": None, "model_type": m}
    assert meta == {"section": "section1_1", "timestamp": ts, "epochs": 100, "device": "cpu", "seed": 7,
                    "dtype": None, "engine": None}
    assert results["mlp"].attrs == {}  # the caller's frames are not modified


def test_attrs_survive_filtering_and_concat(tmp_path):
    ts = save_run(fake_results(), "section1_1", epochs=5, device="cpu", results_dir=tmp_path)
    mlp = load_run("section1_1", ts, results_dir=tmp_path)[0]["mlp"]
    assert mlp[mlp["depth"] == 2].attrs["epochs"] == 5
    assert pd.concat([mlp, mlp]).attrs["model_type"] == "mlp"


def test_metadata_note_usage_examples(tmp_path, monkeypatch, capsys):
    """The code of ../shared/metadata-storage-note.md, run as written against a saved run."""
    monkeypatch.setattr(run_io, "DEFAULT_RESULTS_DIR", tmp_path)
    all_results = fake_results()
    kan_models = {"sin_freq1": make_kan([1, 5, 1], 3)}
    kan_pruned_models = {"sin_freq1": make_kan([1, 2, 1], 3)}
    epochs, device = 100, torch.device("cpu")
    TIMESTAMP = save_run(all_results, 'section1_1',
                         models={'kan': kan_models, 'kan_pruned': kan_pruned_models},
                         epochs=epochs, device=str(device))

    from utils import load_run as note_load_run
    results, meta = note_load_run('section1_1', TIMESTAMP)
    mlp_df = results['mlp']
    kan_df = results['kan']
    print(f"Epochs: {meta['epochs']}")
    print(f"Device: {meta['device']}")
    print(f"Epochs: {mlp_df.attrs['epochs']}")
    print(f"Device: {mlp_df.attrs['device']}")
    print(f"Model: {mlp_df.attrs['model_type']}")
    print(f"Section: {mlp_df.attrs['section']}")
    print(f"Timestamp: {mlp_df.attrs['timestamp']}")
    depths = sorted(mlp_df['depth'].unique())
    activations = sorted(mlp_df['activation'].unique())
    grids = sorted(kan_df['grid_size'].unique())
    num_datasets = mlp_df['dataset_idx'].nunique()
    dataset_names = sorted(mlp_df['dataset_name'].unique())
    sin_names = mlp_df[mlp_df['dataset_name'].str.startswith('sin_freq')]['dataset_name'].unique()
    frequencies = sorted([int(name.replace('sin_freq', '')) for name in sin_names])
    print(f"Depths tested: {depths}")
    print(f"Activations tested: {activations}")
    print(f"Grids tested: {grids}")
    print(f"Datasets: {num_datasets}")
    print(f"Frequencies: {frequencies}")

    out = capsys.readouterr().out
    assert "Epochs: 100\nDevice: cpu\nEpochs: 100\nDevice: cpu\nModel: mlp\nSection: section1_1\n" in out
    assert f"Timestamp: {TIMESTAMP}" in out
    # numpy 2 prints np.int64(2) where the note shows 2: compare values, not reprs
    assert depths == DEPTHS and activations == sorted(ACTS) and grids == GRIDS
    assert num_datasets == 9 and frequencies == [1, 2, 3, 4, 5]
    assert "Datasets: 9" in out and "Frequencies: [1, 2, 3, 4, 5]" in out
    assert len(dataset_names) == 9


def test_models_round_trip_usable(tmp_path):
    torch.manual_seed(0)
    kan = make_kan([1, 5, 1], 5, seed=3)
    models = {"mlp": {"sin_freq1": MLP(1, 5, 3, "silu")}, "siren": [SIREN(1, 5, 2)], "kan": {"d0": kan}}
    ts = save_run({"mlp": pd.DataFrame({"a": [1]})}, "section1_1", models=models, epochs=1, device="cpu",
                  results_dir=tmp_path)
    _, _, loaded = load_run("section1_1", ts, results_dir=tmp_path, load_models=True)
    x = torch.rand(50, 1)
    for orig, new in [(models["mlp"]["sin_freq1"], loaded["mlp"]["sin_freq1"]),
                      (models["siren"][0], loaded["siren"][0]), (kan, loaded["kan"]["d0"])]:
        assert type(new) is type(orig)
        torch.testing.assert_close(new(x), orig(x), rtol=0, atol=0)
        assert count_params(new) == count_params(orig)
    # a rebuilt KAN is a working pykan KAN: it can be refined
    assert loaded["kan"]["d0"].refine(10).act_fun[0].coef.shape[-1] == 13
    # only the DataFrames and one models file: no pykan checkpoint litter
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"section1_1_{ts}_mlp.pkl", f"section1_1_{ts}_models.pt"]


def test_latest_run_and_list_runs(tmp_path):
    stamps = ["20250101_000000", "20251022_203715", "20240101_120000"]
    for i, ts in enumerate(stamps):
        df = pd.DataFrame({"v": [i]})
        df.attrs = {"section": "section1_1", "timestamp": ts, "epochs": i, "device": "cpu", "model_type": "mlp"}
        df.to_pickle(tmp_path / f"section1_1_{ts}_mlp.pkl")
    assert list_runs("section1_1", results_dir=tmp_path) == sorted(stamps)
    results, meta = load_run("section1_1", results_dir=tmp_path)
    assert meta["timestamp"] == "20251022_203715" and results["mlp"]["v"].item() == 1


def test_same_second_runs_never_overwrite(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20251022_203715")
    a = save_run({"mlp": pd.DataFrame({"v": [1]})}, "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    b = save_run({"kan": pd.DataFrame({"v": [2]})}, "section1_1", epochs=2, device="cpu", results_dir=tmp_path)
    assert a == "20251022_203715" and b != a
    assert list_runs("section1_1", results_dir=tmp_path) == [a, b]
    assert load_run("section1_1", a, results_dir=tmp_path)[1]["epochs"] == 1
    res_b, meta_b = load_run("section1_1", results_dir=tmp_path)
    assert meta_b["epochs"] == 2 and list(res_b) == ["kan"]
    assert not list(tmp_path.glob(".*"))  # no lock or temporary files left


@pytest.mark.parametrize("nested", [True, False])
def test_legacy_json_runs_load(tmp_path, nested):
    ts = "20251022_203715"
    legacy = {"epochs": 100, "device": "cpu", "grids": [3, 5], "depths": [2, 3], "num_datasets": 9}
    (tmp_path / f"section1_1_{ts}_meta.json").write_text(json.dumps({"meta": legacy} if nested else legacy))
    frames = fake_results()
    for m in ("mlp", "kan"):
        frames[m].to_pickle(tmp_path / f"section1_1_{ts}_{m}.pkl")
    results, meta = load_run("section1_1", ts, results_dir=tmp_path)
    assert meta["epochs"] == 100 and meta["device"] == "cpu"
    assert results["kan"].attrs["model_type"] == "kan" and results["mlp"].attrs["epochs"] == 100
    assert "grids" not in meta  # derivable values come from the data
    pd.testing.assert_frame_equal(results["mlp"], frames["mlp"].assign(seed=0))  # no seed known: 0


def test_partial_write_leaves_no_run(tmp_path, monkeypatch):
    def boom(self, path, *a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(pd.DataFrame, "to_pickle", boom)
    with pytest.raises(RunError, match=r"could not write .*section1_1_.*\.pkl: disk full"):  # an OSError before
        save_run(fake_results(), "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key,column", [("depths", "depth"), ("activations", "activation"),
                                        ("grids", "grid_size"), ("num_datasets", "dataset_idx"),
                                        ("frequencies", "dataset_name")])
def test_derivable_metadata_refused(tmp_path, key, column):
    with pytest.raises(RunError, match=f"'{key}' is derivable.*{column}"):
        save_run(fake_results(), "section1_1", epochs=1, device="cpu", results_dir=tmp_path, **{key: [1]})
    assert list(tmp_path.iterdir()) == []


def test_bad_save_arguments(tmp_path):
    with pytest.raises(RunError, match="missing required metadata: epochs"):
        save_run(fake_results(), "section1_1", device="cpu", results_dir=tmp_path)
    with pytest.raises(RunError, match="unknown metadata key 'lr'"):
        save_run(fake_results(), "section1_1", epochs=1, device="cpu", lr=1e-3, results_dir=tmp_path)
    with pytest.raises(RunError, match="not a DataFrame"):
        save_run({"mlp": [1, 2]}, "section1_1", epochs=1, device="cpu", results_dir=tmp_path)


def _one_line(err):
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_error_no_section_or_run(tmp_path):
    with pytest.raises(RunError) as e:
        load_run("section1_1", results_dir=tmp_path)
    assert str(tmp_path) in _one_line(e) and "no runs at all" in str(e.value)
    ts = save_run(fake_results(), "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    with pytest.raises(RunError) as e:
        load_run("section9", results_dir=tmp_path)
    assert "section1_1" in _one_line(e)
    with pytest.raises(RunError) as e:
        load_run("section1_1", "20000101_000000", results_dir=tmp_path)
    assert ts in _one_line(e)


def test_error_truncated_and_corrupted_pickles(tmp_path):
    ts = save_run(fake_results(), "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    path = tmp_path / f"section1_1_{ts}_kan.pkl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError) as e:
        load_run("section1_1", ts, results_dir=tmp_path)
    assert str(path) in _one_line(e) and "corrupted" in str(e.value)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(RunError, match="corrupted"):
        load_run("section1_1", ts, results_dir=tmp_path)


def test_error_not_a_dataframe(tmp_path):
    ts = save_run(fake_results(), "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    path = tmp_path / f"section1_1_{ts}_siren.pkl"
    pd.Series([1, 2]).to_pickle(path)
    with pytest.raises(RunError) as e:
        load_run("section1_1", ts, results_dir=tmp_path)
    assert str(path) in _one_line(e) and "Series" in str(e.value)


def test_error_attrs_disagree(tmp_path):
    ts = save_run(fake_results(), "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    path = tmp_path / f"section1_1_{ts}_siren.pkl"
    df = pd.read_pickle(path)
    df.attrs["epochs"] = 999
    df.to_pickle(path)
    with pytest.raises(RunError) as e:
        load_run("section1_1", ts, results_dir=tmp_path)
    assert str(path) in _one_line(e) and "epochs" in str(e.value)


def test_kan_glob_does_not_match_kan_pruning(tmp_path):
    ts = save_run({"kan_pruning": pd.DataFrame({"v": [1]})}, "section1_1", epochs=1, device="cpu",
                  results_dir=tmp_path)
    results, _ = load_run("section1_1", ts, results_dir=tmp_path)
    assert list(results) == ["kan_pruning"]


# ----------------------------------------------------------------------------- issue 14: never lose finished work

def _frames_for_run():
    """A small run: two families with rows and one trained model each."""
    results = {m: df for m, df in fake_results(epochs=2).items() if m in ("mlp", "kan")}
    torch.manual_seed(0)
    models = {"mlp": {"sin_freq1": {"depth2_activationtanh": MLP(1, 5, 2, "tanh")}},
              "kan": {"sin_freq1": {"kan_grid3": make_kan([1, 5, 1], 3, seed=1)}}}
    return results, models


def _visible(folder):
    return sorted(p.name for p in folder.iterdir())


def test_partial_round_trip_equals_save_run(tmp_path):
    """start_run, units, load_partial, finish_run: the same run on disk as save_run of the same data."""
    options = {"epochs": 2, "models": ["mlp", "kan"], "results_dir": tmp_path}
    ts = run_io.start_run("section1_1", results_dir=tmp_path, options=options)
    folder = tmp_path / f"section1_1_{ts}.partial"
    assert folder.is_dir() and run_io.list_unfinished("section1_1", tmp_path) == [ts]
    units = {"mlp-sin_freq1-d2": {"rows": [{"epoch": 1, "test_loss": 0.5}]},
             "kan.sin_freq1_G3": [torch.arange(4.0), {"loss": torch.tensor(1.5)}],
             "frame": pd.DataFrame({"a": [1.0, 2.0]})}
    for key, payload in units.items():
        path = run_io.save_partial("section1_1", ts, key, payload, results_dir=tmp_path)
        assert path == folder / f"{key}.pkl"
    got_options, got_units = run_io.load_partial("section1_1", ts, results_dir=tmp_path)
    assert got_options == options and list(got_units) == sorted(units)
    assert got_units["mlp-sin_freq1-d2"] == units["mlp-sin_freq1-d2"]
    torch.testing.assert_close(got_units["kan.sin_freq1_G3"][0], units["kan.sin_freq1_G3"][0])
    assert got_units["kan.sin_freq1_G3"][1]["loss"].item() == 1.5
    pd.testing.assert_frame_equal(got_units["frame"], units["frame"])

    results, models = _frames_for_run()
    assert run_io.finish_run("section1_1", ts, results, models=models, results_dir=tmp_path,
                             epochs=2, device="cpu", seed=3) == ts
    assert not folder.exists() and run_io.list_unfinished("section1_1", tmp_path) == []
    ref_dir = tmp_path / "ref"
    ref = save_run(results, "section1_1", models=models, results_dir=ref_dir, epochs=2, device="cpu", seed=3)
    assert sorted(_visible(tmp_path)) == sorted([n.replace(ref, ts) for n in _visible(ref_dir)] + ["ref"])
    got = load_run("section1_1", ts, results_dir=tmp_path, load_models=True)
    want = load_run("section1_1", ref, results_dir=ref_dir, load_models=True)
    assert list(got[0]) == list(want[0]) == ["mlp", "kan"]
    for m in got[0]:
        pd.testing.assert_frame_equal(got[0][m], want[0][m])
        assert got[0][m].attrs == {**want[0][m].attrs, "timestamp": ts}
    assert got[1] == {**want[1], "timestamp": ts}
    x = torch.rand(20, 1)
    for fam, key in (("mlp", "depth2_activationtanh"), ("kan", "kan_grid3")):
        torch.testing.assert_close(got[2][fam]["sin_freq1"][key](x), want[2][fam]["sin_freq1"][key](x),
                                   rtol=0, atol=0)
    assert not [n for n in _visible(tmp_path) if n.startswith(".")]  # no lock, no temporary file


def test_unfinished_runs_are_listed_apart_and_never_loaded(tmp_path, monkeypatch):
    stamps = iter(["20250101_000000", "20250102_000000", "20250103_000000"])
    monkeypatch.setattr(time, "strftime", lambda fmt: next(stamps))
    old = save_run({"mlp": pd.DataFrame({"v": [1]})}, "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    ts = run_io.start_run("section1_1", results_dir=tmp_path, options={})
    for i in range(3):
        run_io.save_partial("section1_1", ts, f"unit{i}", i, results_dir=tmp_path)
    assert list_runs("section1_1", results_dir=tmp_path) == [old]
    assert list_runs("section1_1", results_dir=tmp_path, include_unfinished=True) == [old, ts]
    assert load_run("section1_1", results_dir=tmp_path)[1]["timestamp"] == old  # latest *complete* run
    with pytest.raises(RunError) as e:
        load_run("section1_1", ts, results_dir=tmp_path)
    msg = _one_line(e)
    assert "unfinished" in msg and "3 units" in msg and f"python section1_1.py --resume {ts}" in msg
    (tmp_path / f"section1_1_{old}_mlp.pkl").unlink()  # no complete run left: the error says how to resume
    with pytest.raises(RunError) as e:
        load_run("section1_1", results_dir=tmp_path)
    assert "no complete runs" in _one_line(e) and f"--resume {ts}" in str(e.value)


def test_complete_run_wins_over_a_leftover_partial_folder(tmp_path, monkeypatch, capsys):
    """A crash between writing the run and removing its partial folder: the run is complete."""
    ts = run_io.start_run("section1_1", results_dir=tmp_path)
    run_io.save_partial("section1_1", ts, "u", 1, results_dir=tmp_path)

    def cannot_remove(path):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(run_io.shutil, "rmtree", cannot_remove)
    results, _ = _frames_for_run()
    run_io.finish_run("section1_1", ts, results, results_dir=tmp_path, epochs=1, device="cpu")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is complete" in err and "Permission denied" in err
    assert (tmp_path / f"section1_1_{ts}.partial").is_dir()
    assert list_runs("section1_1", results_dir=tmp_path) == [ts]
    assert run_io.list_unfinished("section1_1", results_dir=tmp_path) == []
    assert list_runs("section1_1", results_dir=tmp_path, include_unfinished=True) == [ts]
    assert list(load_run("section1_1", ts, results_dir=tmp_path)[0]) == ["mlp", "kan"]


def test_partial_api_refuses_bad_keys_and_unknown_runs(tmp_path):
    ts = run_io.start_run("section1_1", results_dir=tmp_path)
    for key in ["a/b", "../x", "", "a b", "ü", 3, None]:
        with pytest.raises(RunError, match="invalid key"):
            run_io.save_partial("section1_1", ts, key, 1, results_dir=tmp_path)
    assert run_io.save_partial("section1_1", ts, "Kan_G3.seed-1", 1, results_dir=tmp_path).name == "Kan_G3.seed-1.pkl"
    assert run_io.save_partial("section1_1", ts, "Kan_G3.seed-1", 2, results_dir=tmp_path)  # saved again: replaced
    assert run_io.load_partial("section1_1", ts, results_dir=tmp_path)[1] == {"Kan_G3.seed-1": 2}
    with pytest.raises(RunError) as e:
        run_io.save_partial("section1_1", "20000101_000000", "k", 1, results_dir=tmp_path)
    assert "no unfinished run" in _one_line(e) and ts in str(e.value)
    for bad_ts in ["../../etc", "20000101"]:
        with pytest.raises(RunError, match="invalid timestamp"):
            run_io.load_partial("section1_1", bad_ts, results_dir=tmp_path)
    with pytest.raises(RunError, match="no unfinished run"):
        run_io.finish_run("section1_1", "20000101_000000", fake_results(), results_dir=tmp_path, epochs=1, device="cpu")
    with pytest.raises(RunError, match="options must be a dict"):
        run_io.start_run("section1_1", results_dir=tmp_path, options=["--epochs", "3"])


def test_truncated_unit_is_skipped_with_a_note(tmp_path, capsys):
    ts = run_io.start_run("section1_1", results_dir=tmp_path, options={"seed": 1})
    keep = run_io.save_partial("section1_1", ts, "a", {"rows": list(range(100))}, results_dir=tmp_path)
    cut = run_io.save_partial("section1_1", ts, "b", {"rows": list(range(100))}, results_dir=tmp_path)
    cut.write_bytes(cut.read_bytes()[:40])  # what a kill outside this pipeline's writer could leave
    options, units = run_io.load_partial("section1_1", ts, results_dir=tmp_path)
    assert options == {"seed": 1} and list(units) == ["a"] and keep.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(cut) in err and "trained again" in err and "Traceback" not in err


def test_same_second_partial_and_complete_runs_get_distinct_timestamps(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20251022_203715")
    a = run_io.start_run("section1_1", results_dir=tmp_path)
    b = save_run({"mlp": pd.DataFrame({"v": [1]})}, "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    c = run_io.start_run("section1_1", results_dir=tmp_path)
    assert len({a, b, c}) == 3 and a == "20251022_203715"
    assert run_io.list_unfinished("section1_1", tmp_path) == [a, c]


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        results, models = _frames_for_run()
        save_run(results, "section1_1", models=models, results_dir=tmp_path / "a", epochs=1, device="cpu")
        part = run_io.start_run("section1_1", results_dir=tmp_path / "b")
        unit = run_io.save_partial("section1_1", part, "u", 1, results_dir=tmp_path / "b")
        folder = unit.parent
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [*(tmp_path / "a").iterdir(), *folder.iterdir()]}
        assert stat.S_IMODE(folder.stat().st_mode) == dir_mode
        run_io.finish_run("section1_1", part, results, models=models, results_dir=tmp_path / "b", epochs=1,
                          device="cpu")
        finished = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "b").iterdir()}
    finally:
        os.umask(old)
    # a run's 3 files; options, a unit and the lock by which the run is held
    assert len(modes) == 3 + 3 and len(finished) == 3, (modes, finished)
    assert set(modes.values()) == set(finished.values()) == {file_mode}, (modes, finished)


def _enospc():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_saving_a_run(tmp_path, monkeypatch):
    real = pd.DataFrame.to_pickle
    calls = []

    def fills_the_disk(self, f, *a, **k):  # the second file runs out of space half way
        calls.append(1)
        if len(calls) == 2:
            f.write(b"x" * 100)
            raise _enospc()
        return real(self, f, *a, **k)
    monkeypatch.setattr(pd.DataFrame, "to_pickle", fills_the_disk)
    with pytest.raises(RunError) as e:
        save_run(fake_results(), "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    assert _one_line(e).startswith(f"could not write {tmp_path}/section1_1_")
    assert str(e.value).endswith("_siren.pkl: No space left on device")
    assert list(tmp_path.iterdir()) == []  # no temporary file, no lock, no half a run


def test_full_disk_keeps_the_partial_results(tmp_path, monkeypatch):
    ts = run_io.start_run("section1_1", results_dir=tmp_path, options={"epochs": 1})
    run_io.save_partial("section1_1", ts, "done", {"rows": [1, 2]}, results_dir=tmp_path)
    folder = tmp_path / f"section1_1_{ts}.partial"

    def half_written(obj, f):
        f.write(b"\x80\x05partial")
        raise _enospc()
    monkeypatch.setattr(run_io, "_dump", half_written)
    with pytest.raises(RunError) as e:
        run_io.save_partial("section1_1", ts, "next", {"rows": [3]}, results_dir=tmp_path)
    assert _one_line(e) == f"could not write {folder / 'next.pkl'}: No space left on device"
    monkeypatch.undo()

    real = pd.DataFrame.to_pickle
    monkeypatch.setattr(pd.DataFrame, "to_pickle", lambda self, f, *a, **k: (_ for _ in ()).throw(_enospc()))
    with pytest.raises(RunError, match="No space left on device"):
        run_io.finish_run("section1_1", ts, fake_results(), results_dir=tmp_path, epochs=1, device="cpu")
    assert _visible(tmp_path) == [folder.name]  # no half a run, no temporary files
    assert _visible(folder) == [".lock", "done.pkl", "options.pickle"]  # the lock: this process holds the run
    assert run_io.load_partial("section1_1", ts, results_dir=tmp_path) == ({"epochs": 1}, {"done": {"rows": [1, 2]}})

    monkeypatch.setattr(pd.DataFrame, "to_pickle", real)  # space freed: the run finishes
    run_io.finish_run("section1_1", ts, fake_results(), results_dir=tmp_path, epochs=1, device="cpu")
    assert list_runs("section1_1", results_dir=tmp_path) == [ts] and not folder.exists()


def test_full_disk_when_starting_a_run(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt: "20251022_203715")
    monkeypatch.setattr(run_io, "_dump", lambda obj, f: (_ for _ in ()).throw(_enospc()))
    with pytest.raises(RunError) as e:
        run_io.start_run("section1_1", results_dir=tmp_path, options={})
    path = tmp_path / "section1_1_20251022_203715.partial" / "options.pickle"  # where it was going
    assert _one_line(e) == f"could not write {path}: No space left on device"
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary folder, no lock


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 256 KiB tmpfs, when this process may mount one (root in a privileged container)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_really_full_disk(tiny_tmpfs):
    ts = run_io.start_run("section1_1", results_dir=tiny_tmpfs)
    run_io.save_partial("section1_1", ts, "small", [1, 2, 3], results_dir=tiny_tmpfs)
    big = {"mlp": pd.DataFrame({"x": np.random.default_rng(0).random(100_000)})}  # 800 kB
    with pytest.raises(RunError) as e:
        run_io.finish_run("section1_1", ts, big, results_dir=tiny_tmpfs, epochs=1, device="cpu")
    assert _one_line(e) == f"could not write {tiny_tmpfs}/section1_1_{ts}_mlp.pkl: No space left on device"
    with pytest.raises(RunError, match="No space left on device"):
        save_run(big, "section1_1", results_dir=tiny_tmpfs, epochs=1, device="cpu")
    assert _visible(tiny_tmpfs) == [f"section1_1_{ts}.partial"]
    assert run_io.load_partial("section1_1", ts, results_dir=tiny_tmpfs)[1] == {"small": [1, 2, 3]}


def test_unknown_model_type_is_refused(tmp_path):
    from utils.families import FAMILIES
    assert run_io.MODEL_TYPES == tuple(FAMILIES)  # the storage layer knows the sweep's families
    with pytest.raises(RunError, match="invalid model type 'transformer'"):
        save_run({"transformer": pd.DataFrame({"v": [1]})}, "section1_1", epochs=1, device="cpu", results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("load_models", [False, True])
def test_deleted_family_pickle_is_reported(tmp_path, load_models):
    results, models = _frames_for_run()
    models["siren"] = {"sin_freq1": {"depth2": SIREN(1, 5, 2)}}
    results["siren"] = fake_results()["siren"]
    ts = save_run(results, "section1_1", models=models, results_dir=tmp_path, epochs=1, device="cpu")
    missing = tmp_path / f"section1_1_{ts}_siren.pkl"
    missing.unlink()
    with pytest.raises(RunError) as e:
        load_run("section1_1", ts, results_dir=tmp_path, load_models=load_models)
    assert _one_line(e).startswith(f"{missing}: missing") and "siren" in str(e.value)


def test_deleted_pickle_of_a_run_saved_before_the_record(tmp_path):
    """Models files written before they recorded their run's model types: their families count."""
    from utils.models.saving import to_spec
    results, models = _frames_for_run()
    ts = save_run(results, "section1_1", results_dir=tmp_path, epochs=1, device="cpu")
    torch.save(to_spec(models), tmp_path / f"section1_1_{ts}_models.pt")
    assert load_run("section1_1", ts, results_dir=tmp_path, load_models=True)[2]["kan"]["sin_freq1"]["kan_grid3"]
    (tmp_path / f"section1_1_{ts}_kan.pkl").unlink()
    with pytest.raises(RunError, match=f"section1_1_{ts}_kan.pkl: missing"):
        load_run("section1_1", ts, results_dir=tmp_path)


def _spec(model):
    from utils.models.saving import model_spec
    return {"__model__": model_spec(model)}


@pytest.mark.parametrize("content,where", [
    (lambda: [1, 2], "holds a list"),
    (lambda: {"mlp": 3}, "models['mlp']: a int"),
    (lambda: {"mlp": {"d": {"__model__": {"family": "mlp", "config": {}}}}}, "needs family, config and state"),
    (lambda: {"mlp": {"d": {"__model__": "nonsense"}}}, "needs family, config and state"),
    (lambda: {"mlp": {"d": {"__model__": {**_spec(MLP(1, 5, 3))["__model__"],
                                          "config": MLP(1, 5, 2).config}}}}, "cannot be rebuilt (RuntimeError"),
    (lambda: {"mlp": {"d": {"__model__": {**_spec(MLP(1, 5, 2))["__model__"], "config": {"width": 5, "lr": 1}}}}},
     "cannot be rebuilt (TypeError"),
    (lambda: {"mlp": {"d": {"__model__": {**_spec(MLP(1, 5, 2))["__model__"], "family": "gpt"}}}},
     "cannot be rebuilt (KeyError"),
])
def test_models_file_of_the_wrong_structure(tmp_path, content, where):
    ts = save_run(fake_results(), "section1_1", results_dir=tmp_path, epochs=1, device="cpu")
    path = tmp_path / f"section1_1_{ts}_models.pt"
    torch.save(content(), path)
    with pytest.raises(RunError) as e:
        load_run("section1_1", ts, results_dir=tmp_path, load_models=True)
    assert _one_line(e).startswith(f"{path}: ") and where in str(e.value)
    assert len(load_run("section1_1", ts, results_dir=tmp_path)[0]) == 4  # the DataFrames still load


def test_each_family_keeps_its_own_device_and_engine(tmp_path):
    """--device auto may train families on different devices, with different engines: each
    DataFrame's attrs name its own; meta joins them."""
    results = fake_results()
    ts = save_run(results, "section1_1", epochs=5, device={"mlp": "cpu", "siren": "cpu", "kan": "cuda",
                                                            "kan_pruning": "cuda"},
                  engine={"mlp": "host", "siren": "host", "kan": "resident", "kan_pruning": "resident"},
                  results_dir=tmp_path)
    loaded, meta = load_run("section1_1", ts, results_dir=tmp_path)
    assert {f: df.attrs["device"] for f, df in loaded.items()} == {"mlp": "cpu", "siren": "cpu", "kan": "cuda",
                                                                    "kan_pruning": "cuda"}
    assert {f: df.attrs["engine"] for f, df in loaded.items()} == {"mlp": "host", "siren": "host",
                                                                    "kan": "resident", "kan_pruning": "resident"}
    assert meta["device"] == "cpu+cuda" and meta["engine"] == "host+resident"
    with pytest.raises(RunError, match="engine must be a name, or one per model type"):
        save_run(results, "section1_1", epochs=5, device="cpu", engine={"mlp": 1}, results_dir=tmp_path)
    ts = save_run(results, "section1_1", epochs=5, device="cpu", results_dir=tmp_path)
    assert load_run("section1_1", ts, results_dir=tmp_path)[1]["device"] == "cpu"


def test_a_killed_writers_temporary_files_are_removed_by_the_next_run(tmp_path):
    """A SIGKILL during a save leaves its temporary file, named with the writer's pid and machine; the
    next run (start_run) or resume (hold_run) in the folder removes what dead writers of this machine
    left, and leaves a living writer's and another machine's alone."""
    ts = run_io.start_run("section1_1", results_dir=tmp_path)
    folder = tmp_path / f"section1_1_{ts}.partial"
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from utils import io; "
         "io._stage(Path(sys.argv[1]), lambda f: (f.write(b'half'), f.flush(), print(flush=True), time.sleep(60)))",
         str(tmp_path / "section1_1_20990101_000000_models.pt")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    writer.stdout.readline()
    writer.kill()
    writer.wait()
    (left,) = tmp_path.glob(".tmp_*.part")
    assert left.name.startswith(f".tmp_section1_1_20990101_000000_models.pt.{writer.pid}@{run_io._HOST}.")
    host, dead, alive = run_io._HOST, writer.pid, os.getpid()
    for next_run in (lambda: run_io.hold_run("section1_1", ts, tmp_path),
                     lambda: run_io.start_run("section1_1", results_dir=tmp_path)):
        stale = [left, folder / f".tmp_0001_mlp.pkl.{dead}@{host}.89abcdef.part",
                 tmp_path / f".tmp_section1_1_20990101_000000.partial.{dead}@{host}.01234567"]
        kept = [tmp_path / f".tmp_x.pkl.{alive}@{host}.0123abcd.part",
                tmp_path / f".tmp_x.pkl.{dead}@elsewhere.0123abcd.part"]
        for p in stale[1:-1] + kept:
            p.write_bytes(b"half")
        stale[-1].mkdir(exist_ok=True)
        (stale[-1] / "options.pickle").write_bytes(b"")
        left.write_bytes(b"half")
        next_run()
        assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in kept)


def test_a_models_file_of_another_run_is_refused(tmp_path):
    """The models file records its run: another run's (copied or renamed) is refused in one line, the
    run's DataFrames still load; a file written before the record loads as before."""
    results, models = _frames_for_run()
    a = save_run(results, "section1_1", models=models, results_dir=tmp_path, epochs=1, device="cpu")
    b = save_run(results, "section1_1", models=models, results_dir=tmp_path, epochs=1, device="cpu")
    path_a, path_b = (tmp_path / f"section1_1_{ts}_models.pt" for ts in (a, b))
    shutil.copy(path_a, path_b)
    assert set(load_run("section1_1", b, results_dir=tmp_path)[0]) == set(results)
    with pytest.raises(RunError) as e:
        load_run("section1_1", b, results_dir=tmp_path, load_models=True)
    assert _one_line(e) == (f"{path_b}: holds the models of run section1_1 {a}, not of section1_1 {b} "
                            f"(copied or renamed?)")
    specs = torch.load(path_a, weights_only=True)
    assert specs.pop(run_io.RUN_KEY) == {"section": "section1_1", "timestamp": a}
    torch.save(specs, path_b)
    loaded = load_run("section1_1", b, results_dir=tmp_path, load_models=True)[2]
    assert set(loaded) == {"mlp", "kan"} and isinstance(loaded["mlp"]["sin_freq1"]["depth2_activationtanh"], MLP)
