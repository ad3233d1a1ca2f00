"""The end-of-run summary: each family's selected configuration per dataset, from the DataFrames alone.

The selection rule and the statistics over seeds live in ``utils/analysis/stats.py``; this module
writes the printout a section ends with.
"""
from __future__ import annotations

import pandas as pd

from utils.analysis.stats import IQR_FROM, REPORT, best_per_dataset, selection_rule
from utils.families import FAMILIES

NAMES = {name: f.label for name, f in FAMILIES.items()}


def precision_note(frames: dict, dtype=None) -> str:
    """" (trained in float64)", from ``dtype`` or the run's attrs; "" where an older run does not say."""
    dtype = dtype or next((df.attrs.get("dtype") for df in frames.values() if df.attrs.get("dtype")), None)
    return f" (trained in {dtype})" if dtype else ""


def summary_text(frames: dict, dtype=None) -> str:
    """What a section prints when its run is saved: the best configuration of each family per dataset
    with its dense MSE (with several seeds: the median, the spread and the diverged seeds), the
    training precision, the selection rule in one line, and where training diverged."""
    table = best_per_dataset(frames)
    trained = precision_note(frames, dtype)
    if not len(table):
        return "Best dense MSE per dataset and family: no results."
    several = table["seeds"].max() > 1
    shown = pd.DataFrame({"dataset": table["dataset"], "family": table["family"].map(lambda f: NAMES.get(f, f))})
    if "mode" in table:
        shown["mode"] = table["mode"]
    shown["config"] = table["config"]
    shown["params"] = table["num_params"]
    fmt = "{:.3e}".format
    if several:
        shown["dense MSE (median)"] = table[REPORT].map(fmt)
        shown["spread"] = [f"{fmt(lo)} .. {fmt(hi)}" if k else "" for lo, hi, k in
                           zip(table[f"{REPORT}_lo"], table[f"{REPORT}_hi"], table["spread"])]
        shown["diverged"] = [f"{d}/{n}" for d, n in zip(table["diverged"], table["seeds"])]
        head = (f"Best dense MSE per dataset and family{trained}: median over {table['seeds'].max()} seeds; "
                f"spread = interquartile range, min-max below {IQR_FROM} finished seeds; diverged seeds of all:")
    else:
        shown["dense MSE"] = table[REPORT].map(fmt)
        for c, name in (("dense_max_err", "max error"), ("dense_rel_l2", "rel. L2"), ("h1_error", "H1 error")):
            if c in table:
                shown[name] = table[c].map(fmt)
        head = f"Best dense MSE per dataset and family{trained}:"
    lines = [head, shown.to_string(index=False), selection_rule(frames)]
    diverged = table[table["any_diverged"]]
    if len(diverged):
        lines.append("NaN divergences recorded in: "
                     + ", ".join(sorted(set(diverged["dataset"] + "/" + diverged["family"]))))
    return "\n".join(lines)
