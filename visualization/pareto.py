"""Figure 3: error against parameter count for every configuration (the KAN paper's Pareto plots).

Every configuration of every family is a point (KANs: one point per grid, at the end of its
training); each family's best-per-size front is the line. The dashed line is the scaling the
KAN paper predicts for cubic splines, RMSE ~ N^-4, drawn through the KAN's smallest model; the
axes show MSE, so its slope there is -8.
"""
import numpy as np

from utils.summary import stage_ends
from visualization.style import COLORS, NAMES, dataset_names, families, grid_of_axes, missing_note, save

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}


def front(params, errors):
    """Lowest error reached with at most N parameters, for each N present."""
    order = np.argsort(params, kind="stable")
    p, e = np.asarray(params)[order], np.asarray(errors)[order]
    keep = np.isfinite(e)
    p, e = p[keep], np.minimum.accumulate(e[keep]) if keep.any() else e[keep]
    last = np.r_[p[1:] != p[:-1], True] if len(p) else keep[:0]
    return p[last], e[last]


def draw(section, results, models, out_dir):
    names = dataset_names(results)
    fig, axes = grid_of_axes(len(names))
    for ax, ds in zip(axes, names):
        seen = []
        for fam in families(results):
            ends = stage_ends(results[fam], fam)
            ends = ends[ends["dataset_name"] == ds]
            seen += [v for v in ends["dense_mse"] if np.isfinite(v) and v > 0]
            ax.scatter(ends["num_params"], ends["dense_mse"], s=12, color=COLORS[fam], alpha=0.45)
            fp, fe = front(ends["num_params"].to_numpy(), ends["dense_mse"].to_numpy())
            ax.plot(fp, fe, color=COLORS[fam], lw=1.4, label=NAMES[fam])
            if fam == "kan" and len(fp):
                n = np.geomspace(fp[0], max(fp[-1], fp[0] * 2), 20)
                ax.plot(n, fe[0] * (n / fp[0]) ** -8.0, color="k", ls="--", lw=0.9,
                        label="paper: RMSE $\\propto N^{-4}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if seen:  # the reference line must not stretch the axes away from the data
            ax.set_ylim(min(seen) / 5, max(seen) * 5)
        ax.set_title(ds)
        ax.set_xlabel("parameters")
        ax.set_ylabel("dense MSE")
        ax.legend(loc="lower left")
    fig.suptitle(f"{section}: dense error against parameter count, every configuration (line: best per size)")
    missing_note(fig, results)
    return save(fig, out_dir, "pareto")
