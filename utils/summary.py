"""Best configuration per dataset per family, from a run's DataFrames alone.

A configuration's result is its row at the last epoch it trained; for KANs every grid stage is a
configuration of its own (the model at the end of that grid), since test error is U-shaped in G.
"""
from __future__ import annotations

import math

import pandas as pd

CONFIG_COLUMNS = {"mlp": ["depth", "activation"], "siren": ["depth"], "kan": ["grid_size"],
                  "kan_pruning": ["stage", "grid_size"]}


def config_columns(family: str, df: pd.DataFrame) -> list[str]:
    return [c for c in ["mode"] + CONFIG_COLUMNS.get(family, []) if c in df.columns]


def stage_ends(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The last row of every (dataset, configuration), in first-appearance order."""
    keys = ["dataset_idx"] + config_columns(family, df)
    return df.loc[df.groupby(keys, sort=False)["epoch"].idxmax()]


def config_label(family: str, row) -> str:
    parts = []
    for c in CONFIG_COLUMNS.get(family, []):
        if c not in row:  # older runs' pruned KANs have no stage column
            continue
        v = row[c]
        parts.append(f"G={v}" if c == "grid_size" else f"{c}={v}" if c == "depth" else str(v))
    return " ".join(parts) or family


def best_per_dataset(frames: dict, metric: str = "dense_mse") -> pd.DataFrame:
    """One row per (dataset, family): the configuration with the lowest ``metric``.

    ``any_diverged`` flags a family some configuration of which ended in NaN on that dataset.
    Columns older runs lack (``dense_max_err``, the pruned KAN's ``is_pruned``) are left out.
    """
    out = []
    for family, df in frames.items():
        if df.empty:
            continue
        ends = stage_ends(df, family)
        if family == "kan_pruning" and "is_pruned" in ends and ends["is_pruned"].any():
            ends = ends[ends["is_pruned"]]
        for (idx, name), group in ends.groupby(["dataset_idx", "dataset_name"], sort=True):
            finite = group[group[metric].map(lambda v: math.isfinite(v))]
            row = finite.loc[finite[metric].idxmin()] if len(finite) else group.iloc[-1]
            extra = {c: row[c] for c in ("dense_max_err", "dense_rel_l2", "h1_error") if c in row.index}
            out.append({"dataset_idx": idx, "dataset": name, "family": family,
                        **({"mode": row["mode"]} if "mode" in row.index else {}),
                        "config": config_label(family, row), "num_params": int(row["num_params"]),
                        metric: row[metric], **extra,
                        "any_diverged": bool(group[metric].isna().any() or not len(finite))})
    table = pd.DataFrame(out)
    if len(table):
        order = {f: i for i, f in enumerate(frames)}
        table = table.sort_values(["dataset_idx", "family"], key=lambda s: s.map(order) if s.name == "family" else s)
    return table.reset_index(drop=True)
