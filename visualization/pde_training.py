"""Figure 6: PDE training (the KAN paper's Fig. 3.3 style): L2 and H1 errors against step and size.

L2 error is the MSE against the exact solution on the dense grid; H1 is the gradient MSE. Against
step: each family's selected configuration (median over seeds with a band); against size: every
configuration (medians with bars) and each family's best-per-size front.
"""
import matplotlib.pyplot as plt

from utils.analysis.stats import seed_count, selected_runs
from visualization.pareto import config_medians, front
from visualization.style import (COLORS, NAMES, band, dataset_names, epoch_axis, error_bars, families, missing_note,
                                 params_axis, save, shared_legend, spread_note)

METRICS = (("dense_mse", "L2 error (MSE against exact u)"), ("h1_error", "H1 error (gradient MSE)"))
APPLIES_TO = {"kind": "poisson"}  # the sections it is drawn for (utils.sections.Section fields)
REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "num_params", "dense_mse", "h1_error"}


def draw(section, results, models, out_dir):
    names = dataset_names(results)
    n_seeds = seed_count(results)
    paths = []
    for by in ("epoch", "num_params"):
        fig, axes = plt.subplots(len(names), 2, figsize=(9.5, 3.2 * len(names)), squeeze=False)
        for i, ds in enumerate(names):
            for j, (metric, label) in enumerate(METRICS):
                ax = axes[i][j]
                for fam in families(results):
                    if by == "epoch":
                        band(ax, selected_runs(results, fam, ds), "epoch", metric, COLORS[fam], NAMES[fam])
                    else:
                        t = config_medians(results, fam, ds, metric)
                        ax.scatter(t["num_params"], t[metric], s=10, color=COLORS[fam], alpha=0.45)
                        if n_seeds > 1:
                            error_bars(ax, t, "num_params", metric, COLORS[fam])
                        fp, fe = front(t["num_params"].to_numpy(float), t[metric].to_numpy(float))
                        ax.plot(fp, fe, color=COLORS[fam], lw=1.3, label=NAMES[fam])
                ax.set_yscale("log")
                epoch_axis(ax) if by == "epoch" else params_axis(ax)
                ax.set_ylabel(label)
                ax.set_title(ds)
        shared_legend(fig, list(axes.flat))
        what = "selected configuration against step" if by == "epoch" else "every configuration against size"
        note = spread_note(n_seeds, "band" if by == "epoch" else "bars")
        fig.suptitle(f"{section}: PDE solution errors, {what}" + (f"\n{note}" if note else ""))
        missing_note(fig, results)
        paths += save(fig, out_dir, f"pde_training_{'steps' if by == 'epoch' else 'params'}")
    return paths
