"""Figure 6: PDE training (the KAN paper's Fig. 3.3 style): L2 and H1 errors against step and size.

L2 error is the MSE against the exact solution on the dense grid; H1 is the gradient MSE.
"""
from utils.summary import stage_ends
from visualization.pareto import front
from visualization.style import (BEST_ROW_COLUMNS, COLORS, NAMES, best_rows, config_rows, dataset_names, families,
                                 missing_note, save)
import matplotlib.pyplot as plt

METRICS = (("dense_mse", "L2 error (MSE vs exact u)"), ("h1_error", "H1 error (gradient MSE)"))
REQUIRED_COLUMNS = BEST_ROW_COLUMNS | {metric for metric, _ in METRICS}


def draw(section, results, models, out_dir):
    names = dataset_names(results)
    best = best_rows(results)
    paths = []
    for by in ("epoch", "num_params"):
        fig, axes = plt.subplots(len(names), 2, figsize=(9.5, 3.2 * len(names)), squeeze=False)
        for i, ds in enumerate(names):
            for j, (metric, label) in enumerate(METRICS):
                ax = axes[i][j]
                for fam in families(results):
                    if by == "epoch":
                        row = best.get((ds, fam))
                        if row is None:
                            continue
                        rows = config_rows(results[fam], fam, row)
                        ax.plot(rows["epoch"], rows[metric], color=COLORS[fam], lw=1.2, label=NAMES[fam])
                    else:
                        ends = stage_ends(results[fam], fam)
                        ends = ends[ends["dataset_name"] == ds]
                        ax.scatter(ends["num_params"], ends[metric], s=10, color=COLORS[fam], alpha=0.45)
                        fp, fe = front(ends["num_params"].to_numpy(), ends[metric].to_numpy())
                        ax.plot(fp, fe, color=COLORS[fam], lw=1.3, label=NAMES[fam])
                ax.set_yscale("log")
                if by == "num_params":
                    ax.set_xscale("log")
                ax.set_xlabel("epoch (LBFGS step)" if by == "epoch" else "parameters")
                ax.set_ylabel(label)
                ax.set_title(ds)
                ax.legend(loc="best")
        what = "best configuration against step" if by == "epoch" else "every configuration against size"
        fig.suptitle(f"{section}: PDE solution errors, {what}")
        missing_note(fig, results)
        paths += save(fig, out_dir, f"pde_training_{'steps' if by == 'epoch' else 'params'}")
    return paths
