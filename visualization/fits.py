"""Figure 1: per dataset, the truth and each family's selected model, on the training domain.

With several seeds each family is drawn by the seed of its selected configuration whose dense error
is the median (``style.best_rows``); the legend names it.
"""
import torch

from utils.analysis.stats import seed_count
from visualization.style import (COLORS, SECTIONS, best_rows, dataset_names, grid_of_axes, missing_note, save,
                                 selected_models, short_label, which_seed)

APPLIES_TO = {"dim": 1}  # the sections it is drawn for (utils.sections.Section fields)
REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}
NEEDS_MODELS = True


@torch.no_grad()
def draw(section, results, models, out_dir):
    names = dataset_names(results)
    best = best_rows(results)
    n_seeds = seed_count(results)
    fig, axes = grid_of_axes(len(names), size=(4.6, 4.4))
    for ax, name in zip(axes, names):
        fn, ((lo, hi),) = SECTIONS[section].truth(name)  # PDE datasets: the exact solution u
        x = torch.linspace(lo, hi, 1000, dtype=torch.float64)[:, None]
        ax.plot(x, fn(x), color="k", lw=2.2, alpha=0.35, label="truth")
        for fam, row, model in selected_models(results, models, best, name):
            ax.plot(x, model(x), color=COLORS[fam], lw=1.1, label=short_label(fam, row, n_seeds))
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=6.5)  # below: hides no curve
    which = which_seed(n_seeds, "error")
    fig.suptitle(f"{section}: selected model of each family{which}; dense MSE on the training domain")
    missing_note(fig, results)
    return save(fig, out_dir, "fits")
