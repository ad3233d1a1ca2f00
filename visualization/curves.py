"""Figure 2: learning curves of each family's selected configuration, against epoch and wall time.

Section 1.1 shows the test MSE (held-out points). The PDE sections show the L2 error against the
exact solution (``dense_mse``): their ``test_loss`` is the physics-informed loss on held-out points,
which can rise while the error against u falls. With several seeds a curve is the median over seeds
with a band (``style.band``). KAN curves are whole grid-extension trajectories; dotted lines mark
the epochs where the grid was refined (and, for the pruned KAN, where it was pruned). The same
curves against wall time are ``curves_walltime``, a figure of its own so that a run without
``wall_time`` (an older run) still gets its curves against epoch.
"""
import pandas as pd

from utils.analysis.stats import seed_count, selected_runs
from utils.families import FAMILIES
from visualization.style import (COLORS, NAMES, band, dataset_names, epoch_axis, families, grid_of_axes, grid_switches,
                                 is_pde, missing_note, save, shared_legend, spread_note)

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "test_loss", "dense_mse", "num_params"}


def metric(section):
    """(column, axis label) a section's learning curves show."""
    if is_pde(section):
        return "dense_mse", "L2 error (MSE against exact u)"
    return "test_loss", "test MSE (held-out points)"


def learning_curves(section, results, out_dir, xcol, xlabel, name):
    names = dataset_names(results)
    ycol, ylabel = metric(section)
    fig, axes = grid_of_axes(len(names))
    for ax, ds in zip(axes, names):
        for fam in families(results):
            runs = selected_runs(results, fam, ds)
            if not runs:
                continue
            band(ax, runs, xcol, ycol, COLORS[fam], NAMES[fam])
            rows = runs[0]
            x_at = pd.concat(runs).groupby("epoch")[xcol].median()  # where band() draws each epoch
            if FAMILIES[fam].grid_schedule:
                for epoch, g in grid_switches(rows):
                    x = x_at[epoch]
                    ax.axvline(x, color=COLORS[fam], ls=":", lw=0.8, alpha=1.0 if fam == "kan" else 0.5)
                    if fam == "kan":  # one family's labels keep the panel readable
                        ax.annotate(f"G={g}", (x, 0.02), xycoords=("data", "axes fraction"), fontsize=6,
                                    color=COLORS[fam], rotation=90, va="bottom", ha="right")
                if "is_pruned" in rows and rows["is_pruned"].any() and not rows["is_pruned"].all():
                    x = x_at[rows.loc[rows["is_pruned"].astype(bool), "epoch"].iloc[0]]
                    ax.axvline(x, color=COLORS[fam], ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(ds)
        epoch_axis(ax) if xcol == "epoch" else ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    shared_legend(fig, axes)
    note = spread_note(seed_count(results))
    fig.suptitle(f"{section}: learning curves of each family's selected configuration\n"
                 f"({note + '; ' if note else ''}dotted: KAN grid refinements; dashed: pruning)")
    missing_note(fig, results)
    return save(fig, out_dir, name)


def draw(section, results, models, out_dir):
    return learning_curves(section, results, out_dir, "epoch", "epoch (LBFGS step)", "curves_epoch")
