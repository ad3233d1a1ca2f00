"""Figure 4: KAN grid extension (the KAN paper's Fig. 2.3 style).

Left figure: train and test loss over steps, a staircase as each refinement lowers the floor.
Right figure: train and test loss at the end of each grid against G; test error is U-shaped in G,
and its minimum marks the interpolation threshold. In the PDE sections the losses are the
physics-informed objective (not an error against u), so both figures add the L2 error against the
exact u, and the threshold is marked on it. With several seeds: medians over seeds with a band
(staircase) or bars (against G), as ``style.band`` and ``style.medians`` draw them.
"""
import numpy as np
from matplotlib.ticker import NullFormatter

from utils.analysis.stats import seed_count, stage_ends
from visualization.style import (COLORS, band, dataset_names, epoch_axis, error_bars, grid_of_axes, grid_switches,
                                 is_pde, loss_label, medians, save, shared_legend, spread_note)

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "train_loss", "test_loss", "dense_mse"}


def lines(section, results):
    """(column, legend label, colour, line style) of each quantity drawn, and the y-axis label."""
    loss = loss_label(section, results)
    if not is_pde(section):
        return [("train_loss", "train MSE", COLORS["kan"], "-"),
                ("test_loss", "test MSE (held-out points)", "k", "--")], "MSE"
    return [("train_loss", f"train: {loss}", COLORS["kan"], "-"),
            ("test_loss", f"held-out points: {loss}", "k", "--"),
            ("dense_mse", "L2 error (MSE against exact u)", "#9467bd", "-.")], "loss; L2 error"

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "train_loss", "test_loss"}  # and the KAN's grid_size


def draw(section, results, models, out_dir):
    if "kan" not in results or not len(results["kan"]):
        return []
    kan = results["kan"]
    names = dataset_names({"kan": kan})
    drawn, ylabel = lines(section, results)
    n_seeds = seed_count({"kan": kan})
    paths = []
    fig, axes = grid_of_axes(len(names))
    for ax, ds in zip(axes, names):
        rows = kan[kan["dataset_name"] == ds]
        runs = [r.sort_values("epoch") for _, r in rows.groupby("seed", sort=True)]
        for col, label, color, ls in drawn:
            band(ax, runs, "epoch", col, color, label, ls=ls, lw=1.1)
        for epoch, g in grid_switches(runs[0]):
            ax.axvline(epoch, color="0.6", ls=":", lw=0.8)
            ax.annotate(f"G={g}", (epoch, 1), xycoords=("data", "axes fraction"), fontsize=6, rotation=90,
                        va="top", ha="right")
        ax.set_yscale("log")
        ax.set_title(f"{ds}: KAN, G from {rows['grid_size'].min()} to {rows['grid_size'].max()}")
        epoch_axis(ax)
        ax.set_ylabel(ylabel)
    shared_legend(fig, axes)
    note = spread_note(n_seeds)
    fig.suptitle(f"{section}: KAN training with grid extension" + (f"\n{note}" if note else ""))
    paths += save(fig, out_dir, "grid_extension_steps")

    fig, axes = grid_of_axes(len(names))
    marked = drawn[-1][0] if is_pde(section) else "test_loss"
    for ax, ds in zip(axes, names):
        ends = stage_ends(kan[kan["dataset_name"] == ds], "kan")
        t = medians(ends, [c for c, *_ in drawn], ["grid_size"]).sort_values("grid_size")
        for col, label, color, ls in drawn:
            ax.plot(t["grid_size"], t[col], marker="o" if col == "train_loss" else "s", ls=ls, color=color,
                    label=label)
            if n_seeds > 1:
                error_bars(ax, t, "grid_size", col, color)
        err = t[marked].to_numpy(float)
        if np.isfinite(err).any():
            i = int(np.nanargmin(err))
            ax.axvline(t["grid_size"].iloc[i], color="0.5", ls=":", lw=1)
            what = "lowest L2 error" if marked == "dense_mse" else "lowest test error"
            ax.annotate(what, (t["grid_size"].iloc[i], 0.98), xycoords=("data", "axes fraction"), fontsize=7,
                        rotation=90, va="top", ha="right", color="0.35")
        ax.set_xscale("log")
        ax.set_xticks(t["grid_size"].to_numpy(), [str(g) for g in t["grid_size"]])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yscale("log")
        ax.set_title(f"{ds}: at the end of each grid")
        ax.set_xlabel("grid size G")
        ax.set_ylabel(ylabel)
    shared_legend(fig, axes)
    note = spread_note(n_seeds, "bars")
    fig.suptitle(f"{section}: KAN error against grid size (interpolation threshold at the lowest "
                 f"{'L2' if marked == 'dense_mse' else 'test'} error)" + (f"\n{note}" if note else ""))
    return paths + save(fig, out_dir, "grid_extension_G")
