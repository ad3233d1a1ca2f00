"""Small synthetic runs, in the current schema and as an earlier pipeline wrote them.

Storage and figure tests build their runs here instead of training (seconds, not minutes). The
older frames differ from current ones exactly as older runs on disk do: epochs counted from 0, one
constant ``total_time`` per model instead of the cumulative ``wall_time``, no ``dense_max_err``, no
``seed`` column, KAN losses stored as 0-d numpy arrays, and ``kan_pruning`` holding the KAN rows
plus one pruned row per dataset (``is_pruned``, no ``stage``).
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATASETS = {"section1_1": ["sin_freq1", "sin_freq2"], "section1_2": ["poisson_1d_sin", "poisson_1d_poly"]}
GRIDS, EPOCHS_PER_GRID = (3, 5), 2
PDE_COLUMNS = ("dense_rel_l2", "h1_error", "residual_mse")


def _trajectory(rng, n, scale, start_epoch=1, wall0=0.0):
    """Rows of one configuration: decreasing losses, cumulative wall time."""
    loss = scale * np.geomspace(1.0, 1e-3, n) * (1 + 0.1 * rng.random(n))
    return [{"epoch": start_epoch + i, "train_loss": loss[i], "test_loss": 1.1 * loss[i], "dense_mse": 1.2 * loss[i],
             "dense_max_err": np.sqrt(loss[i]) * 3, "wall_time": wall0 + 0.01 * (i + 1)} for i in range(n)]


def current_frames(section="section1_1", seed=0):
    """{family: DataFrame} with every column the figures and tables read (design.md section 3)."""
    rng = np.random.default_rng(seed)
    pde = section != "section1_1"
    rows = {f: [] for f in ("mlp", "siren", "kan", "kan_pruning")}
    n = EPOCHS_PER_GRID * len(GRIDS)
    for idx, name in enumerate(DATASETS[section]):
        base = {"dataset_idx": idx, "dataset_name": name, "seed": seed}
        for depth in (2, 3):
            for r in _trajectory(rng, n, 1.0):
                rows["mlp"].append({**base, "depth": depth, "activation": "tanh", **r, "num_params": 10 * depth})
            for r in _trajectory(rng, n, 0.5):
                rows["siren"].append({**base, "depth": depth, **r, "num_params": 10 * depth})
        for i, r in enumerate(_trajectory(rng, n, 0.1)):
            g = GRIDS[i // EPOCHS_PER_GRID]
            rows["kan"].append({**base, "grid_size": g, **r, "num_params": 10 * (g + 5)})
        for i, r in enumerate(_trajectory(rng, n + 1, 0.2)):
            stage, g = ("sparsify", GRIDS[0]) if i == 0 else ("retrain", GRIDS[(i - 1) // EPOCHS_PER_GRID])
            rows["kan_pruning"].append({**base, "grid_size": g, "stage": stage, "is_pruned": i > 0, **r,
                                        "num_params": 6 * (g + 5)})
    frames = {f: pd.DataFrame(r) for f, r in rows.items()}
    if pde:
        for df in frames.values():
            for c in PDE_COLUMNS:
                df[c] = df["dense_mse"] * 2
            df["mode"] = "pinn"
    return frames


def older_frames(section="section1_1", seed=0, pde_columns=PDE_COLUMNS):
    """The same sweep as an earlier pipeline stored it (see the module docstring)."""
    frames = {}
    for family, df in current_frames(section, seed).items():
        if family == "kan_pruning":
            continue
        df = df.drop(columns=["dense_max_err", "seed", "stage", *[c for c in PDE_COLUMNS if c not in pde_columns]],
                     errors="ignore")
        df["epoch"] -= 1
        keys = ["dataset_idx"] + [c for c in ("depth", "activation") if c in df]
        df["total_time"] = df.groupby(keys)["wall_time"].transform("max")
        df = df.drop(columns=["wall_time"])
        if family == "kan":
            df["is_pruned"] = False
            for c in ("train_loss", "test_loss"):
                df[c] = pd.Series([np.array(v) for v in df[c]], index=df.index, dtype=object)
        frames[family] = df
    pruned = []
    for idx, rows in frames["kan"].groupby("dataset_idx"):
        last = rows.iloc[-1].to_dict()
        pruned.append({**last, "epoch": last["epoch"] + 1, "is_pruned": True, "num_params": last["num_params"] // 2,
                       "train_loss": np.array(2 * float(last["train_loss"])),
                       "test_loss": np.array(2 * float(last["test_loss"])), "dense_mse": 2 * last["dense_mse"]})
    frames["kan_pruning"] = pd.concat([frames["kan"], pd.DataFrame(pruned)], ignore_index=True)
    return frames


@pytest.fixture
def no_rendering(monkeypatch):
    """Figures are built but not rendered: seconds saved where a test is about which are drawn."""
    from matplotlib.figure import Figure
    monkeypatch.setattr(Figure, "tight_layout", lambda self, *a, **k: None)
    monkeypatch.setattr(Figure, "savefig", lambda self, path, *a, **k: Path(path).write_bytes(b"figure"))
