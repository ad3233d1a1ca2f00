"""Figure 8 (2D PDE problems): 3D surfaces of the exact solution and each family's prediction.

Where ``fields2d`` compares errors on one colour scale, these show the shape each model learned:
every panel of a problem shares the same z range and colour scale, so a flattened or tilted
solution stands out. Each family is drawn by its selected configuration's median seed.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch

from utils.analysis.stats import seed_count
from visualization.style import (NAMES, best_rows, dataset_names, exact, missing_note, save, seed_note,
                                 selected_models, which_seed)

APPLIES_TO = {"dim": 2}  # the sections it is drawn for (utils.sections.Section fields)
REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}
NEEDS_MODELS = True
N_SURFACE = 60  # points per axis: smooth surfaces, and a mesh the eye can still follow


@torch.no_grad()
def surface(pde, fn):
    """(X, Y, Z) of ``fn`` on an N_SURFACE x N_SURFACE grid of the problem's domain."""
    (x0, x1), (y0, y1) = pde.domain
    X, Y = np.meshgrid(np.linspace(x0, x1, N_SURFACE), np.linspace(y0, y1, N_SURFACE), indexing="xy")
    pts = torch.tensor(np.stack([X.ravel(), Y.ravel()], 1), dtype=torch.float64)
    return X, Y, fn(pts).reshape(X.shape).double().numpy()


def draw(section, results, models, out_dir):
    best = best_rows(results)
    n_seeds = seed_count(results)
    paths = []
    for name in dataset_names(results):
        pde = exact(section, name)
        panels = [("exact u", surface(pde, pde.u))]
        for fam, row, model in selected_models(results, models, best, name):
            panels.append((f"{NAMES[fam]} {row['config']}{seed_note(row, n_seeds)}\nL2 error {row['dense_mse']:.1e}",
                           surface(pde, model)))
        zs = np.concatenate([z.ravel() for _, (_, _, z) in panels])
        zlo, zhi = float(np.nanmin(zs)), float(np.nanmax(zs))
        ncol = min(len(panels), 3)
        nrow = int(np.ceil(len(panels) / ncol))
        fig = plt.figure(figsize=(4.2 * ncol, 3.7 * nrow))
        for i, (title, (X, Y, Z)) in enumerate(panels, start=1):
            ax = fig.add_subplot(nrow, ncol, i, projection="3d")
            ax.plot_surface(X, Y, Z, cmap="viridis", vmin=zlo, vmax=zhi, linewidth=0, antialiased=True)
            ax.set_zlim(zlo, zhi)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            ax.set_zlabel("u")
            ax.view_init(elev=28, azim=-60)
        fig.suptitle(f"{section} {name}: exact solution and each family's selected model{which_seed(n_seeds)}; "
                     "one z scale")
        missing_note(fig, results)
        paths += save(fig, out_dir, f"surfaces_{name}")
    return paths
