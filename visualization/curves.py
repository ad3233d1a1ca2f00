"""Figure 2: test MSE of each family's best configuration against epoch.

KAN curves are whole grid-extension trajectories; dotted lines mark the epochs where the grid was
refined (and, for the pruned KAN, where it was pruned). The same curves against wall time are
``curves_walltime``, a figure of its own so that a run without ``wall_time`` (an older run) still
gets its curves against epoch.
"""
from visualization.style import (BEST_ROW_COLUMNS, COLORS, NAMES, best_rows, config_rows, dataset_names, families,
                                 grid_of_axes, grid_switches, missing_note, save)

REQUIRED_COLUMNS = BEST_ROW_COLUMNS | {"test_loss"}


def learning_curves(section, results, out_dir, xcol, xlabel, name):
    names = dataset_names(results)
    best = best_rows(results)
    fig, axes = grid_of_axes(len(names))
    for ax, ds in zip(axes, names):
        for fam in families(results):
            row = best.get((ds, fam))
            if row is None:
                continue
            rows = config_rows(results[fam], fam, row)
            ax.plot(rows[xcol], rows["test_loss"], color=COLORS[fam], lw=1.2, label=NAMES[fam])
            if fam.startswith("kan"):
                for epoch, g in grid_switches(rows):
                    x = rows.loc[rows["epoch"] == epoch, xcol].iloc[0]
                    ax.axvline(x, color=COLORS[fam], ls=":", lw=0.8, alpha=1.0 if fam == "kan" else 0.5)
                    if fam == "kan":  # one family's labels keep the panel readable
                        ax.annotate(f"G={g}", (x, 0.02), xycoords=("data", "axes fraction"), fontsize=6,
                                    color=COLORS[fam], rotation=90, va="bottom", ha="right")
                if "is_pruned" in rows and rows["is_pruned"].any() and not rows["is_pruned"].all():
                    x = rows.loc[rows["is_pruned"], xcol].iloc[0]
                    ax.axvline(x, color=COLORS[fam], ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(ds)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test loss (MSE)")
        ax.legend(loc="upper right")
    fig.suptitle(f"{section}: learning curves of each family's best configuration "
                 f"(dotted: KAN grid refinements; dashed: pruning)")
    missing_note(fig, results)
    return save(fig, out_dir, name)


def draw(section, results, models, out_dir):
    return learning_curves(section, results, out_dir, "epoch", "epoch (LBFGS step)", "curves_epoch")
