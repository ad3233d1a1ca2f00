"""What a configuration is, from a run's DataFrames alone: its columns, its label, its stage-end rows.

A configuration's result is its row at the last epoch it trained. For KANs every grid stage is a
configuration of its own (the model at the end of that grid), since test error is U-shaped in G;
one training run of a KAN (one seed) therefore holds several configurations. The statistics over
seeds (``utils/stats.py``) and the figures all pick rows through these functions, so that they
agree on what is being compared.
"""
from __future__ import annotations

import pandas as pd

from utils.families import FAMILIES

FAMILY_ORDER = tuple(FAMILIES)  # tables list families in this order
CONFIG_COLUMNS = {name: list(f.config_columns) for name, f in FAMILIES.items()}
STAGE_COLUMNS = ("grid_size", "stage")  # change within one training run of a KAN


def config_columns(family: str, df: pd.DataFrame) -> list[str]:
    """The columns that tell one configuration of ``family`` from another (the PDE mode included)."""
    return [c for c in ["mode"] + CONFIG_COLUMNS.get(family, []) if c in df.columns]


def run_columns(family: str, df: pd.DataFrame) -> list[str]:
    """The columns that tell one training run from another: dataset, configuration bar the KAN's
    grid stage, and seed. A run's rows are its epochs."""
    cols = ["dataset_idx"] + [c for c in config_columns(family, df) if c not in STAGE_COLUMNS]
    return cols + (["seed"] if "seed" in df.columns else [])


def stage_ends(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The last row of every (dataset, configuration, seed), in first-appearance order."""
    keys = ["dataset_idx"] + config_columns(family, df) + (["seed"] if "seed" in df.columns else [])
    return df.loc[df.groupby(keys, sort=False, dropna=False)["epoch"].idxmax()]


def candidates(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The stage ends that compete for a family's best configuration.

    A pruned KAN is judged by its pruned network only: its sparsify stage (the unpruned model
    trained with the sparsity penalty) is a step of the protocol, not a result of it.
    """
    ends = stage_ends(df, family)
    if family == "kan_pruning" and "is_pruned" in ends and ends["is_pruned"].any():
        ends = ends[ends["is_pruned"].astype(bool)]
    return ends


def config_label(family: str, row) -> str:
    """'depth=3 tanh', 'G=10', 'retrain G=10': how tables and legends name a configuration."""
    parts = []
    for c in CONFIG_COLUMNS.get(family, []):
        if c not in row:  # older runs' pruned KANs have no stage column
            continue
        v = row[c]
        parts.append(f"G={v}" if c == "grid_size" else f"{c}={v}" if c == "depth" else str(v))
    return " ".join(parts) or family


def family_rank(family: str) -> int:
    """Position of ``family`` in tables: FAMILY_ORDER first, any other family after them."""
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)
