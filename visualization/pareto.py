"""Figure 3: error against parameter count for every configuration (the KAN paper's Pareto plots).

Every configuration of every family is a point (KANs: one point per grid, at the end of its
training); each family's best-per-size front is the line. With several seeds a point is the
configuration's median over seeds, with bars for the spread (interquartile range, min-max below 4
seeds; horizontal bars where the parameter count differs between seeds, as a pruned KAN's does),
and the front joins the medians. The dashed line is the scaling the KAN paper predicts for cubic
splines, RMSE ~ N^-4, drawn through the KAN's smallest model; the axes show MSE, so its slope
there is -8.
"""
import numpy as np

from utils.analysis.stats import config_columns, seed_count, stage_ends
from visualization.style import (COLORS, NAMES, dataset_names, error_bars, families, grid_of_axes, is_pde, medians,
                                 missing_note, params_axis, save, shared_legend, spread_note)

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}


def front(params, errors):
    """Lowest error reached with at most N parameters, for each N present."""
    order = np.argsort(params, kind="stable")
    p, e = np.asarray(params)[order], np.asarray(errors)[order]
    keep = np.isfinite(e)
    p, e = p[keep], np.minimum.accumulate(e[keep]) if keep.any() else e[keep]
    last = np.r_[p[1:] != p[:-1], True] if len(p) else keep[:0]
    return p[last], e[last]


def config_medians(results, family, dataset, metric):
    """One row per configuration of ``family`` on ``dataset``: median (and spread) over seeds of
    ``metric`` and of the parameter count, at the end of each configuration's training."""
    df = results[family]
    ends = stage_ends(df, family)
    ends = ends[ends["dataset_name"] == dataset]
    return medians(ends, ["num_params", metric], config_columns(family, df) or ["dataset_idx"])


def draw_family(ax, results, family, dataset, metric, bars):
    """Points (with bars over seeds), the best-per-size front; returns the table drawn."""
    t = config_medians(results, family, dataset, metric)
    ax.scatter(t["num_params"], t[metric], s=12, color=COLORS[family], alpha=0.45)
    if bars:
        error_bars(ax, t, "num_params", metric, COLORS[family])
    fp, fe = front(t["num_params"].to_numpy(float), t[metric].to_numpy(float))
    ax.plot(fp, fe, color=COLORS[family], lw=1.4, label=NAMES[family])
    return t, fp, fe


def draw(section, results, models, out_dir):
    names = dataset_names(results)
    bars = seed_count(results) > 1
    fig, axes = grid_of_axes(len(names))
    for ax, ds in zip(axes, names):
        seen, kan_front = [], None
        for fam in families(results):
            t, fp, fe = draw_family(ax, results, fam, ds, "dense_mse", bars)
            for c in ("dense_mse", "dense_mse_lo", "dense_mse_hi"):
                seen += [v for v in t[c] if np.isfinite(v) and v > 0]
            kan_front = (fp, fe) if fam == "kan" and len(fp) else kan_front
        if kan_front:
            fp, fe = kan_front
            n = np.geomspace(fp[0], max(fp[-1], fp[0] * 2), 20)
            ax.plot(n, fe[0] * (n / fp[0]) ** -8.0, color="k", ls="--", lw=0.9, label="paper: RMSE $\\propto N^{-4}$")
        params_axis(ax)
        ax.set_yscale("log")
        if seen:  # the reference line must not stretch the axes away from the data
            ax.set_ylim(min(seen) / 5, max(seen) * 5)
        ax.set_title(ds)
        ax.set_ylabel("L2 error (MSE against exact u)" if is_pde(section) else "dense MSE")
    shared_legend(fig, axes)
    note = spread_note(seed_count(results), "bars")
    fig.suptitle(f"{section}: dense error against parameter count, every configuration (line: best per size)"
                 + (f"\n{note}" if note else ""))
    missing_note(fig, results)
    return save(fig, out_dir, "pareto")
