"""The run-storage contract of utils/io.py (design.md section 2, issue 2)."""
import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from utils import RunError, list_runs, load_run, save_run
from utils import io as run_io
from utils.models import MLP, SIREN, count_params, make_kan

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
    for m, df in results.items():
        pd.testing.assert_frame_equal(loaded[m], df)
        assert loaded[m].attrs == {"section": "section1_1", "timestamp": ts, "epochs": 100,
                                   "device": "cpu", "seed": 7, "model_type": m}
    assert meta == {"section": "section1_1", "timestamp": ts, "epochs": 100, "device": "cpu", "seed": 7}
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
    pd.testing.assert_frame_equal(results["mlp"], frames["mlp"])


def test_partial_write_leaves_no_run(tmp_path, monkeypatch):
    def boom(self, path, *a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(pd.DataFrame, "to_pickle", boom)
    with pytest.raises(OSError):
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
