"""Shared look of every figure, and the few helpers every figure module needs.

Everything a figure shows comes from a saved run: the DataFrames (swept values are derived from
their columns, never from stored metadata) and the saved models. Each family is shown by the
configuration ``utils.analysis.stats.py`` selects; with several seeds a curve is the median over seeds with a
band (interquartile range, min-max below 4 seeds), a point the median with bars, and a figure that
draws one model draws the seed whose error is the median.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from utils.analysis.stats import (IQR_FROM, config_label, family_selection, representative, spread,  # noqa: E402
                                  spread_bounds)
from utils.families import FAMILIES, FAMILY_ORDER, model_key  # noqa: E402
from utils.sections import SECTIONS  # noqa: E402

COLORS = {name: f.color for name, f in FAMILIES.items()}
NAMES = {name: f.label for name, f in FAMILIES.items()}

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
    """{(dataset, family): the stage-end row of the selected configuration's median seed}.

    The median seed (``utils.analysis.stats.representative``) is the model a figure of one model per family
    shows; with one seed it is that seed.
    """
    best = {}
    for fam in families(results):  # one family at a time: its integer columns stay integers (model keys)
        for ds, rows in family_selection(results[fam], fam).groupby("dataset_name", sort=False):
            row = representative(rows, metric)
            if row is None:  # every seed diverged: the first seed's row, if it has one
                row = next((r for _, r in rows.iterrows() if pd.notna(r["epoch"])), None)
            if row is not None:
                best[(ds, fam)] = row
    return best


def epoch_axis(ax):
    """Epochs are whole LBFGS steps: no tick at 1.25."""
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch (LBFGS step)")


def shared_legend(fig, axes):
    """One legend for all panels, below them, where it hides no data."""
    entries = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, h)
    fig.legend(list(entries.values()), list(entries), loc="lower center", ncol=len(entries), frameon=False,
               bbox_to_anchor=(0.5, 0.0 + 0.15 / fig.get_figheight()), fontsize=8)


def params_axis(ax):
    """Log axis of parameter counts labelled with plain numbers (1, 2, 5 x 10^k), no crowded minor labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("parameters")


def spread_note(n_seeds: int, what="band") -> str:
    """How a figure with several seeds summarizes them, for its title; '' for one seed."""
    if n_seeds <= 1:
        return ""
    kind = "interquartile range" if n_seeds >= IQR_FROM else "min-max"
    return f"median over {n_seeds} seeds, {what}: {kind}"


def band(ax, runs, xcol, ycol, color, label, **kw):
    """One line per family: the median of ``ycol`` over the seeds' ``runs`` at each epoch, with a
    shaded band from ``spread_bounds``; one run is drawn as its own line. Against wall time, x is
    the median over seeds of the cumulative wall time at that epoch. Returns the median line."""
    if not runs:
        return None
    if len(runs) == 1:
        r = runs[0]
        return ax.plot(r[xcol], r[ycol], color=color, label=label, **{"lw": 1.2, **kw})[0]
    long = pd.concat([r.assign(_run=i) for i, r in enumerate(runs)])
    y = long.set_index(["epoch", "_run"])[ycol].unstack("_run").sort_index()
    x = y.index.to_numpy(float) if xcol == "epoch" else long.groupby("epoch")[xcol].median().reindex(y.index)
    b = spread_bounds(y)
    line = ax.plot(x, b["median"], color=color, label=label, **{"lw": 1.2, **kw})[0]
    ax.fill_between(x, b["lo"], b["hi"], color=color, alpha=0.18, lw=0)
    return line


def medians(ends, columns, by):
    """Per configuration (``by``), over its seeds: the median and spread of each of ``columns``
    (``<col>``, ``<col>_lo``, ``<col>_hi``), for points with error bars."""
    out = []
    for key, g in ends.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for c in columns:
            s = spread(g[c])
            row.update({c: s["median"], f"{c}_lo": s["lo"], f"{c}_hi": s["hi"]})
        out.append(row)
    return pd.DataFrame(out)


def error_bars(ax, table, xcol, ycol, color, **kw):
    """Medians with bars from ``medians`` (log axes: bars as lower and upper offsets)."""
    t = table[np.isfinite(table[ycol].astype(float))]
    yerr = np.vstack([t[ycol] - t[f"{ycol}_lo"], t[f"{ycol}_hi"] - t[ycol]])
    xerr = np.vstack([t[xcol] - t[f"{xcol}_lo"], t[f"{xcol}_hi"] - t[xcol]]) if f"{xcol}_lo" in t else None
    ax.errorbar(t[xcol], t[ycol], yerr=yerr, xerr=xerr, fmt="none", ecolor=color, elinewidth=0.8, capsize=2,
                alpha=0.6, **kw)


def saved_model(models, family, dataset, row):
    """The trained model of the configuration ``row``, or None if the run did not save it."""
    saved = (models or {}).get(family, {}).get(dataset)
    if row is None or not saved:
        return None
    if model_key(family, row) in saved:
        return saved[model_key(family, row)]
    return saved.get(FAMILIES[family].key(row))  # a run saved before keys named the seed


def selected_models(results, models, best, dataset):
    """(family, row, model) for each family whose selected configuration on ``dataset`` the run saved;
    the model as a function of float64 points with float64 values, whatever precision it trained in."""
    for family in families(results):
        row = best.get((dataset, family))
        model = saved_model(models, family, dataset, row)
        if model is not None:
            yield family, row, float64_function(model)


def float64_function(model):
    """``model`` evaluated at float64 points, in its own dtype, with float64 values."""
    dtype = next(model.parameters()).dtype
    return lambda x: model(x.to(dtype)).to(torch.float64)


def seed_note(row, seeds: int) -> str:
    """", seed S" after a model of a run with several seeds: which seed's model a panel draws."""
    return f", seed {int(row['seed'])}" if seeds > 1 and "seed" in row.index else ""


def which_seed(seeds: int, error: str = "L2 error") -> str:
    """The title's note in figures that draw one model per family, for a run with several seeds."""
    return f" (of {seeds} seeds, the one with the median {error})" if seeds > 1 else ""


def short_label(family, row, seeds: int = 1) -> str:
    return (f"{NAMES[family]} {config_label(family, row)}, {int(row['num_params'])} params, "
            f"MSE {row['dense_mse']:.1e}{seed_note(row, seeds)}")


def exact(section, name):
    """The dataset's exact function and domain (``.u``, ``.domain``): a target, or an equation's solution."""
    fn, domain = SECTIONS[section].truth(name)
    return SimpleNamespace(u=fn, domain=domain)


def is_pde(section) -> bool:
    """Whether the section solves equations (errors against an exact u) rather than fitting targets."""
    return SECTIONS[section].is_pde


def loss_label(section, results) -> str:
    """What ``train_loss``, ``val_loss`` and ``test_loss`` hold in this section: an MSE against the
    target in a regression section and in supervised PDE runs, the physics-informed objective
    (residual and boundary terms, not an error against u) in PINN runs."""
    if not is_pde(section):
        return "MSE"
    modes = {m for f in families(results) if "mode" in results[f] for m in results[f]["mode"].dropna().unique()}
    if modes == {"supervised"}:
        return "MSE against u samples"
    return "physics-informed loss" if modes <= {"pinn"} else "loss (PINN: physics-informed; supervised: MSE)"


def grid_switches(rows):
    """Epochs at which a KAN moved to a finer grid (and where pruning happened)."""
    g = rows["grid_size"].to_numpy()
    e = rows["epoch"].to_numpy()
    return [(e[i], g[i]) for i in range(1, len(g)) if g[i] != g[i - 1]]


def save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    if fig.get_suptitle():  # a title wider than the figure would be cut: wrap it to the figure's width
        width = max(40, int(fig.get_figwidth() * 11))
        fig.suptitle("\n".join(textwrap.fill(line, width, break_on_hyphens=False) for line in fig.get_suptitle().split("\n")))
    bottom = 0.02 + (0.4 / fig.get_figheight() if fig.legends else 0)  # room for shared_legend
    fig.tight_layout(rect=(0, bottom, 1, 1))
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths
