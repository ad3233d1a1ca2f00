"""Figure 4: KAN grid extension (the KAN paper's Fig. 2.3 style).

Left figure: train and test loss over steps, a staircase as each refinement lowers the floor.
Right figure: train and test loss at the end of each grid against G; test error is U-shaped in G,
and its minimum marks the interpolation threshold.
"""
import numpy as np

from utils.summary import stage_ends
from visualization.style import COLORS, dataset_names, grid_of_axes, grid_switches, save

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "train_loss", "test_loss"}  # and the KAN's grid_size


def draw(section, results, models, out_dir):
    if "kan" not in results or not len(results["kan"]):
        return []
    kan = results["kan"]
    names = dataset_names({"kan": kan})
    paths = []
    fig, axes = grid_of_axes(len(names))
    for ax, ds in zip(axes, names):
        rows = kan[kan["dataset_name"] == ds]
        ax.plot(rows["epoch"], rows["train_loss"], color=COLORS["kan"], lw=1.1, label="train")
        ax.plot(rows["epoch"], rows["test_loss"], color="k", lw=1.1, ls="--", label="test")
        for epoch, g in grid_switches(rows):
            ax.axvline(epoch, color="0.6", ls=":", lw=0.8)
            ax.annotate(f"G={g}", (epoch, 1), xycoords=("data", "axes fraction"), fontsize=6, rotation=90,
                        va="top", ha="right")
        ax.set_yscale("log")
        ax.set_title(f"{ds}: KAN, G from {rows['grid_size'].iloc[0]} to {rows['grid_size'].iloc[-1]}")
        ax.set_xlabel("epoch (LBFGS step)")
        ax.set_ylabel("loss (MSE)")
        ax.legend()
    fig.suptitle(f"{section}: KAN training with grid extension")
    paths += save(fig, out_dir, "grid_extension_steps")

    fig, axes = grid_of_axes(len(names))
    for ax, ds in zip(axes, names):
        ends = stage_ends(kan[kan["dataset_name"] == ds], "kan")
        ax.plot(ends["grid_size"], ends["train_loss"], "o-", color=COLORS["kan"], label="train")
        ax.plot(ends["grid_size"], ends["test_loss"], "s--", color="k", label="test")
        test = ends["test_loss"].to_numpy()
        if np.isfinite(test).any():
            i = int(np.nanargmin(test))
            ax.axvline(ends["grid_size"].iloc[i], color="0.5", ls=":", lw=1)
            last = i == len(test) - 1  # keep the label inside the axes
            ax.annotate("lowest test error", (ends["grid_size"].iloc[i], test[i]), fontsize=7,
                        xytext=(-6 if last else 4, 8), textcoords="offset points", ha="right" if last else "left")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(ds)
        ax.set_xlabel("grid size G")
        ax.set_ylabel("loss at the end of the grid (MSE)")
        ax.legend()
    fig.suptitle(f"{section}: KAN error against grid size (interpolation threshold at the lowest test error)")
    return paths + save(fig, out_dir, "grid_extension_G")
