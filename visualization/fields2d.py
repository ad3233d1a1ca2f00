"""Figure 5: 2D problems: truth, each family's prediction and its error on the 100 x 100 grid.

Error panels of one problem share one colour scale, so families compare at a glance. Each family
is drawn by its selected configuration's median seed (``style.best_rows``).
"""
import matplotlib.pyplot as plt
import torch

from utils.analysis.stats import seed_count
from utils.problems.data import dense_grid
from visualization.style import (NAMES, best_rows, dataset_names, exact, missing_note, save, seed_note,
                                 selected_models, which_seed)

APPLIES_TO = {"dim": 2}  # the sections it is drawn for (utils.sections.Section fields)
REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}
NEEDS_MODELS = True


def draw(section, results, models, out_dir):
    best = best_rows(results)
    n_seeds = seed_count(results)
    paths = []
    for name in dataset_names(results):
        pde = exact(section, name)
        x = dense_grid(pde.domain, "cpu")
        n = int(round(len(x) ** 0.5))
        extent = [pde.domain[0][0], pde.domain[0][1], pde.domain[1][0], pde.domain[1][1]]
        img = lambda v: v.reshape(n, n).T  # rows along y, so that x runs horizontally
        show = lambda ax, v, **kw: ax.imshow(img(v), extent=extent, origin="lower", **kw)
        u = pde.u(x)
        preds = {}
        for fam, row, model in selected_models(results, models, best, name):
            with torch.no_grad():
                preds[fam] = (model(x), row)
        ncol = 1 + max(len(preds), 1)
        fig, axes = plt.subplots(2, ncol, figsize=(3.3 * ncol, 6.2), squeeze=False)
        vmin, vmax = u.min().item(), u.max().item()
        emax = max([(p - u).abs().max().item() for p, _ in preds.values()] + [1e-12])
        im = show(axes[0][0], u, vmin=vmin, vmax=vmax, cmap="viridis")
        axes[0][0].set_title("exact u")
        fig.colorbar(im, ax=axes[0][0], shrink=0.8)
        axes[1][0].axis("off")
        for j, (fam, (p, row)) in enumerate(preds.items(), start=1):
            im = show(axes[0][j], p, vmin=vmin, vmax=vmax, cmap="viridis")
            axes[0][j].set_title(f"{NAMES[fam]} ({int(row['num_params'])} params{seed_note(row, n_seeds)})")
            fig.colorbar(im, ax=axes[0][j], shrink=0.8)
            im = show(axes[1][j], (p - u).abs(), vmin=0, vmax=emax, cmap="magma")
            axes[1][j].set_title(f"|error|, L2 {row['dense_mse']:.1e}")
            fig.colorbar(im, ax=axes[1][j], shrink=0.8)
        for ax in axes.flat:
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            ax.grid(False)
        fig.suptitle(f"{section} {name}: selected model of each family{which_seed(n_seeds)}; "
                     "errors on one colour scale")
        missing_note(fig, results)
        paths += save(fig, out_dir, f"fields_{name}")
    return paths
