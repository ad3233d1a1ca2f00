"""Shared look of every figure, and the few helpers every figure module needs.

Everything a figure shows comes from a saved run: the DataFrames (swept values are derived from
their columns, never from stored metadata) and the saved models.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from utils.summary import best_per_dataset, config_columns, config_label, stage_ends  # noqa: E402
from utils.sweep import legacy_model_key, model_key  # noqa: E402

FAMILY_ORDER = ("mlp", "siren", "kan", "kan_pruning")
COLORS = {"mlp": "#1f77b4", "siren": "#2ca02c", "kan": "#d62728", "kan_pruning": "#ff7f0e"}
NAMES = {"mlp": "MLP", "siren": "SIREN", "kan": "KAN", "kan_pruning": "pruned KAN"}

# Columns every figure that picks each family's best configuration (best_rows) reads.
BEST_ROW_COLUMNS = frozenset({"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"})

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10,
                     "legend.fontsize": 7, "axes.grid": True, "grid.alpha": 0.3})


def families(results) -> list[str]:
    return [f for f in FAMILY_ORDER if f in results and len(results[f])]


def missing_note(fig, results, wanted=FAMILY_ORDER):
    """A figure drawn without a family says so, instead of silently leaving it out."""
    missing = [NAMES[f] for f in wanted if f not in families(results)]
    if missing:
        fig.text(0.01, 0.005, f"not in this run: {', '.join(missing)}", fontsize=8, color="0.4")


def dataset_names(results) -> list[str]:
    """Dataset names in dataset_idx order, from whatever families the run has."""
    pairs = set()
    for df in results.values():
        pairs |= set(zip(df["dataset_idx"], df["dataset_name"]))
    return [name for _, name in sorted(pairs)]


def grid_of_axes(n, ncols=3, size=(4.6, 3.4), **kw):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def best_rows(results, metric="dense_mse"):
    """{(dataset, family): the best configuration's stage-end row}, with its full row from the data."""
    table = best_per_dataset({f: results[f] for f in families(results)}, metric)
    best = {}
    for _, t in table.iterrows():
        df = results[t["family"]]
        ends = stage_ends(df, t["family"])
        ends = ends[ends["dataset_name"] == t["dataset"]]
        match = ends[ends.apply(lambda r: config_label(t["family"], r) == t["config"], axis=1)]
        if len(match):
            best[(t["dataset"], t["family"])] = match.iloc[0]
    return best


def config_rows(df, family, row):
    """All epochs of the configuration ``row`` belongs to (for KANs: the whole grid trajectory)."""
    cols = [c for c in config_columns(family, df) if c not in ("grid_size", "stage")]
    mask = df["dataset_idx"] == row["dataset_idx"]
    for c in cols:
        mask &= df[c] == row[c]
    return df[mask]


def saved_model(models, family, dataset, row):
    """The trained model of the configuration ``row``, or None if the run did not save it."""
    saved = (models or {}).get(family, {}).get(dataset)
    if row is None or not saved:
        return None
    if "seed" in row.index and model_key(family, row) in saved:
        return saved[model_key(family, row)]
    return saved.get(legacy_model_key(family, row))  # a run saved before keys named the seed


def short_label(family, row) -> str:
    return f"{NAMES[family]} {config_label(family, row)}, {int(row['num_params'])} params, MSE {row['dense_mse']:.1e}"


def grid_switches(rows):
    """Epochs at which a KAN moved to a finer grid (and where pruning happened)."""
    g = rows["grid_size"].to_numpy()
    e = rows["epoch"].to_numpy()
    return [(e[i], g[i]) for i in range(1, len(g)) if g[i] != g[i - 1]]


def save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths
