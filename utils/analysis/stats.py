"""What a run says, from its DataFrames alone: configurations, the selection rule, statistics over seeds.

Configurations. A configuration's result is its row at the last epoch it trained. For KANs every grid
stage is a configuration of its own (the model at the end of that grid), since test error is
U-shaped in G; one training run of a KAN (one seed) therefore holds several configurations. The
summary, the tables and the figures all pick rows through these functions, so that they agree on
what is being compared.

Selection rule. A family's configuration (and a KAN's grid stage) is chosen by its validation loss,
``val_loss``, never by the metric that is reported: the minimum of many noisy dense errors would be
biased low, the dense error of a configuration chosen on other data is not. With several seeds the
configuration with the lowest median validation loss over the seeds is chosen, and reported by its
dense error (``dense_mse``). A run saved before ``val_loss`` existed falls back to the older rule,
the lowest (median) dense error, and ``selection_rule`` says so. A pruned KAN competes with its
pruned network only.

Divergence. A seed whose model diverged has NaN metrics, or no row at all for the stages it never
reached; both count as diverged. They lose every comparison (a NaN validation loss ranks as +inf,
so a configuration that diverges in most seeds is not chosen) and are counted rather than averaged:
medians and spreads are over the seeds that finished.

Spread. The interquartile range (pandas' linear-interpolation quantiles) from ``IQR_FROM`` finite
values on; below that the quartiles of 2 or 3 numbers say little, so the spread is min-max.

Every DataFrame has a ``seed`` column: the sweep writes one, and older runs get one when loaded
(``utils.storage.layouts.repair``).
"""
from __future__ import annotations

import itertools
import math
import weakref

import numpy as np
import pandas as pd

from utils.families import FAMILIES, FAMILY_ORDER

SELECT_BY, REPORT = "val_loss", "dense_mse"
IQR_FROM = 4
THRESHOLDS = (1e-3, 1e-5)
PDE_EXTRAS = ("dense_rel_l2", "h1_error")


# ----------------------------------------------------------------------------- configurations

CONFIG_COLUMNS = {name: list(f.config_columns) for name, f in FAMILIES.items()}
STAGE_COLUMNS = ("grid_size", "stage")  # change within one training run of a KAN


def config_columns(family: str, df: pd.DataFrame) -> list[str]:
    """The columns that tell one configuration of ``family`` from another (the PDE mode included)."""
    return [c for c in ["mode"] + CONFIG_COLUMNS.get(family, []) if c in df.columns]


def run_columns(family: str, df: pd.DataFrame) -> list[str]:
    """The columns that tell one training run from another: dataset, configuration bar the KAN's
    grid stage, and seed. A run's rows are its epochs."""
    return ["dataset_idx"] + [c for c in config_columns(family, df) if c not in STAGE_COLUMNS] + ["seed"]


def stage_ends(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The last row of every (dataset, configuration, seed), in first-appearance order."""
    keys = ["dataset_idx"] + config_columns(family, df) + ["seed"]
    return df.loc[df.groupby(keys, sort=False, dropna=False)["epoch"].idxmax()]


def candidates(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The stage ends that compete for a family's best configuration.

    A pruned KAN is judged by its pruned network only: its sparsify stage (the unpruned model
    trained with the sparsity penalty) is a step of the protocol, not a result of it.
    """
    ends = stage_ends(df, family)
    if _pruned_only(family) and "is_pruned" in ends and ends["is_pruned"].any():
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


def _pruned_only(family: str) -> bool:
    """A family judged by its pruned stages only (the pruned KAN); unknown families are not."""
    return getattr(FAMILIES.get(family), "pruned_only", False)


def family_rank(family: str) -> int:
    """Position of ``family`` in tables: FAMILY_ORDER first, any other family after them."""
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


# ----------------------------------------------------------------------------- selection and statistics

def selection_metric(df: pd.DataFrame) -> str:
    """``val_loss`` where the run recorded it, else the fallback ``dense_mse``."""
    return SELECT_BY if SELECT_BY in df.columns and df[SELECT_BY].notna().any() else REPORT


def selection_rule(frames: dict) -> str:
    """The selection rule of this run, in one line (table captions, the end-of-run summary)."""
    fallback = [f for f, df in frames.items() if len(df) and selection_metric(df) != SELECT_BY]
    several = any(len(df) and df["seed"].nunique() > 1 for df in frames.values())
    median, over = ("median ", " over seeds") if several else ("", "")
    rule = (f"Selection: per dataset and family, the configuration (for KANs the grid stage; pruned KANs: "
            f"pruned stages only) with the lowest {median}validation loss{over}; reported by its dense MSE.")
    if not fallback:
        return rule
    if len(fallback) == len([f for f, df in frames.items() if len(df)]):
        return (f"Selection: this run has no validation loss, so the configuration with the lowest {median}"
                f"dense MSE{over} is chosen and reported (the older rule; its numbers are biased low).")
    return rule + f" No validation loss in {', '.join(fallback)}: chosen there by the lowest {median}dense MSE."


def spread(values) -> dict:
    """Median and spread of one metric over seeds; NaN or infinite values count as diverged.

    ``kind`` is 'IQR' from IQR_FROM finite values on, 'min-max' for 2 or 3, '' for fewer.
    """
    v = pd.Series(values, dtype=float)
    ok = v[np.isfinite(v)]
    if len(ok) >= IQR_FROM:
        lo, hi, kind = ok.quantile(0.25), ok.quantile(0.75), "IQR"
    elif len(ok) >= 2:
        lo, hi, kind = ok.min(), ok.max(), "min-max"
    else:
        lo = hi = ok.median() if len(ok) else math.nan
        kind = ""
    return {"median": ok.median() if len(ok) else math.nan, "lo": lo, "hi": hi, "kind": kind,
            "seeds": len(v), "diverged": len(v) - len(ok)}


def spread_bounds(table: pd.DataFrame) -> pd.DataFrame:
    """``spread`` of every row of a (rows x seeds) table at once: columns median, lo, hi, finite."""
    t = table.astype(float).where(np.isfinite(table.astype(float)))
    finite = t.notna().sum(axis=1)
    iqr = finite >= IQR_FROM
    lo = t.quantile(0.25, axis=1).where(iqr, t.min(axis=1))
    hi = t.quantile(0.75, axis=1).where(iqr, t.max(axis=1))
    return pd.DataFrame({"median": t.median(axis=1), "lo": lo, "hi": hi, "finite": finite})


def _seeds(df: pd.DataFrame, dataset_idx) -> list:
    return sorted(df.loc[df["dataset_idx"] == dataset_idx, "seed"].unique())


def selected_rows(frames: dict) -> pd.DataFrame:
    """One row per (dataset, family, seed): the stage-end row of the family's selected configuration.

    Columns: the row's own, plus ``family``, ``config`` (its label) and ``selected_by`` (the metric
    the rule used). A seed that never reached the selected stage (it diverged earlier) has a row of
    NaN metrics. Families come in FAMILY_ORDER; datasets in their ``dataset_idx`` order. Columns that
    only some families have are NaN in the others' rows, which turns integer columns into floats:
    select one family at a time where the values must keep their type (model keys).
    """
    out = []
    for family, df in frames.items():
        if df is None or not len(df):
            continue
        by, keys = selection_metric(df), config_columns(family, df)
        ends = candidates(df, family)
        for (idx, name), group in ends.groupby(["dataset_idx", "dataset_name"], sort=True):
            seeds = _seeds(df, idx)
            configs = [rows for _, rows in group.groupby(keys, sort=False, dropna=False)] if keys else [group]
            score = lambda rows: rows.set_index("seed")[by].reindex(seeds).fillna(np.inf).median()
            best = min(configs, key=score)  # the first of equals, in the order the sweep ran them
            label = config_label(family, best.iloc[0])
            sel = best.set_index("seed").reindex(seeds).rename_axis("seed").reset_index()
            sel = sel.assign(dataset_idx=idx, dataset_name=name, **{k: best.iloc[0][k] for k in keys})
            out.append(sel.assign(family=family, config=label, selected_by=by))
    if not out:
        return pd.DataFrame(columns=["dataset_idx", "dataset_name", "family", "seed", "config", "selected_by"])
    table = pd.concat(out, ignore_index=True)
    return table.sort_values(["dataset_idx", "family", "seed"], kind="stable",
                             key=lambda s: s.map(family_rank) if s.name == "family" else s).reset_index(drop=True)


def representative(rows: pd.DataFrame, metric: str = REPORT):
    """The seed of ``rows`` (one configuration's seeds) whose ``metric`` is the median (the lower one
    of an even count): the model a figure shows for the configuration. None if no seed finished."""
    done = rows[np.isfinite(rows[metric].astype(float))].sort_values(metric, kind="stable")
    return done.iloc[(len(done) - 1) // 2] if len(done) else None


def best_per_dataset(frames: dict, metric: str = REPORT) -> pd.DataFrame:
    """One row per (dataset, family): the selected configuration, its median ``metric`` over seeds
    and the spread, with the medians of the other error columns.

    ``any_diverged`` flags a family some configuration of which (any seed) ended in NaN on that
    dataset; ``diverged`` counts the seeds of the selected configuration that did.
    """
    sel = selected_rows(frames)
    out = []
    for (idx, name, family), g in sel.groupby(["dataset_idx", "dataset_name", "family"], sort=False):
        s = spread(g[metric])
        params = g["num_params"].dropna()
        n_params = params.median() if len(params) else math.nan
        ends = candidates(frames[family], family)
        ends = ends[ends["dataset_idx"] == idx]
        row = {"dataset_idx": idx, "dataset": name, "family": family,
               **({"mode": g["mode"].dropna().iloc[0]} if "mode" in g and g["mode"].notna().any() else {}),
               "config": g["config"].iloc[0],
               "num_params": int(n_params) if float(n_params).is_integer() else n_params,
               metric: s["median"]}
        row.update({c: g[c].median() for c in ("dense_max_err", *PDE_EXTRAS) if c in g and c != metric})
        row.update({"any_diverged": bool(ends[metric].isna().any() or s["diverged"] == s["seeds"]),
                    "seeds": s["seeds"], "diverged": s["diverged"], f"{metric}_lo": s["lo"],
                    f"{metric}_hi": s["hi"], "spread": s["kind"], "selected_by": g["selected_by"].iloc[0]})
        out.append(row)
    return pd.DataFrame(out)


def head_to_head(frames: dict, metric: str = REPORT) -> pd.DataFrame:
    """For each dataset and pair of families (in FAMILY_ORDER), in how many of their common seeds
    the first family's selected model has the lower ``metric`` than the second's, and the reverse.

    A diverged model loses; two diverged models, or equal errors, are a tie.
    """
    sel = selected_rows(frames)
    out = []
    for (idx, name), g in sel.groupby(["dataset_idx", "dataset_name"], sort=False):
        per_family = {f: r.set_index("seed")[metric].astype(float) for f, r in g.groupby("family", sort=False)}
        for a, b in itertools.combinations(per_family, 2):
            common = per_family[a].index.intersection(per_family[b].index)
            va = per_family[a][common].where(lambda v: np.isfinite(v), np.inf)
            vb = per_family[b][common].where(lambda v: np.isfinite(v), np.inf)
            out.append({"dataset_idx": idx, "dataset": name, "family_a": a, "family_b": b, "seeds": len(common),
                        "a_wins": int((va < vb).sum()), "b_wins": int((vb < va).sum()),
                        "ties": int((va == vb).sum())})
    return pd.DataFrame(out, columns=["dataset_idx", "dataset", "family_a", "family_b", "seeds", "a_wins",
                                      "b_wins", "ties"])


def run_rows(df: pd.DataFrame, family: str, row) -> pd.DataFrame:
    """Every epoch of the training run ``row`` belongs to (a KAN's: all its grid stages), by epoch."""
    mask = pd.Series(True, index=df.index)
    for c in run_columns(family, df):
        mask &= df[c] == row[c]
    return df[mask].sort_values("epoch")


def _first_reaching(run: pd.DataFrame, family: str, threshold: float, metric: str):
    """(epochs, seconds) of the run's first epoch with ``metric`` <= threshold, else (inf, inf).
    A pruned KAN reaches it only with its pruned network; the time before pruning counts."""
    eligible = run["is_pruned"].astype(bool) if _pruned_only(family) and "is_pruned" in run else True
    hit = run[(run[metric] <= threshold) & eligible]
    if not len(hit):
        return math.inf, math.inf
    first = hit.iloc[0]
    return float(first["epoch"]), float(first["wall_time"]) if "wall_time" in first else math.nan


def time_to_accuracy(frames: dict, thresholds=THRESHOLDS, metric: str = REPORT) -> pd.DataFrame:
    """Per dataset and family: the median over seeds of the epochs and the training seconds the
    selected configuration took to first reach ``metric`` <= each threshold.

    A KAN's selected configuration is a grid stage: its run counts up to the end of that stage (all
    of it for a seed that diverged before reaching the stage). A seed that never reaches a threshold counts as +inf, so the median is +inf ("not reached") when
    half of the seeds or more did not; ``reached_<t>`` counts the seeds that did.
    """
    sel = selected_rows(frames)
    out = []
    for (idx, name, family), g in sel.groupby(["dataset_idx", "dataset_name", "family"], sort=False):
        df = frames[family]
        row = {"dataset_idx": idx, "dataset": name, "family": family, "config": g["config"].iloc[0],
               "seeds": len(g)}
        for t in thresholds:
            epochs, seconds = [], []
            for _, s in g.iterrows():
                run = run_rows(df, family, s)
                if pd.notna(s["epoch"]):  # stop at the end of the selected stage
                    run = run[run["epoch"] <= s["epoch"]]
                e, sec = _first_reaching(run, family, t, metric)
                epochs.append(e)
                seconds.append(sec)
            row[f"epochs_to_{t:.0e}"] = float(np.median(epochs))
            row[f"seconds_to_{t:.0e}"] = float(np.median(seconds))
            row[f"reached_{t:.0e}"] = int(np.isfinite(epochs).sum())
        out.append(row)
    return pd.DataFrame(out)


def epoch_times(df: pd.DataFrame, family: str) -> pd.Series:
    """Seconds each epoch took: the difference of consecutive cumulative ``wall_time`` values of
    one training run; a run's first epoch took its own ``wall_time`` (the clock starts at zero)."""
    df = df.sort_values("epoch", kind="stable")
    previous = df.groupby(run_columns(family, df), sort=False, dropna=False)["wall_time"].shift(fill_value=0.0)
    return (df["wall_time"] - previous).rename("epoch_seconds")


def efficiency(frames: dict) -> pd.DataFrame:
    """Per family: mean and standard deviation of the time per epoch (over every epoch it trained,
    all datasets and seeds), its parameter counts, configurations, seeds and training runs."""
    out = []
    for family in sorted(frames, key=family_rank):
        df = frames[family]
        if df is None or not len(df):
            continue
        times = epoch_times(df, family)
        ends = candidates(df, family)
        keys = config_columns(family, df)
        out.append({"family": family, "epoch_seconds_mean": times.mean(), "epoch_seconds_std": times.std(),
                    "params_min": int(ends["num_params"].min()), "params_max": int(ends["num_params"].max()),
                    "configurations": len(ends.drop_duplicates(keys)) if keys else 1,
                    "seeds": df["seed"].nunique(),
                    "runs": len(df.drop_duplicates(run_columns(family, df))), "epochs": len(df)})
    return pd.DataFrame(out)

# ----------------------------------------------------------------------------- selected runs (figures)

_SELECTIONS = {}  # id(DataFrame) -> (weak reference to it, family, its selected_rows)


def family_selection(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """``selected_rows`` of one family's DataFrame, computed once per DataFrame (figures ask for every
    dataset; a full run's selection takes about a second). The cache keeps no DataFrame alive."""
    hit = _SELECTIONS.get(id(df))
    if hit is None or hit[0]() is not df or hit[1] != family:
        ref = weakref.ref(df, lambda _, key=id(df): _SELECTIONS.pop(key, None))
        hit = _SELECTIONS[id(df)] = (ref, family, selected_rows({family: df}))
    return hit[2]


def selected_runs(frames: dict, family: str, dataset) -> list:
    """Every seed's training run (all epochs; a KAN's through all its grids) of the configuration
    selected for ``family`` on ``dataset``."""
    df = frames[family]
    sel = family_selection(df, family)
    runs = [run_rows(df, family, row) for _, row in sel[sel["dataset_name"] == dataset].iterrows()]
    return [r for r in runs if len(r)]


def seed_count(frames: dict) -> int:
    """The most seeds any family of the run trained."""
    return max([df["seed"].nunique() for df in frames.values() if len(df)] or [1])
