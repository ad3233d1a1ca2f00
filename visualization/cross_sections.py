"""Figure 7 (2D PDE problems): truth and each family's selected model along two lines, and their errors.

The lines are y = const and x = const through the middle of the domain, where a 2D field is easiest
to read as curves. Where the exact u vanishes along a middle line (a nodal line: both middle lines
of poisson_2d_spec and poisson_2d_highfreq), the panel would show the models' errors twice and the
truth as zero, so that line moves to the grid point where |u| is largest and its title says so.
Each family is drawn by its selected configuration's median seed (``style.best_rows``).
"""
import matplotlib.pyplot as plt
import numpy as np
import torch

from utils.analysis.stats import seed_count
from visualization.style import (COLORS, NAMES, best_rows, dataset_names, exact, missing_note, save, seed_note,
                                 selected_models, shared_legend, which_seed)

APPLIES_TO = {"dim": 2}  # the sections it is drawn for (utils.sections.Section fields)
REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}
NEEDS_MODELS = True
N_LINE = 401  # points along each line; 401 puts x = 1/8 (a crest of sin(4 pi x)) on the grid of [0, 1]


def lines(pde):
    """[(axis that varies, the other coordinate's value, note)] for the two cross sections."""
    (x0, x1), (y0, y1) = pde.domain
    xs, ys = np.linspace(x0, x1, N_LINE), np.linspace(y0, y1, N_LINE)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float64)  # float32 sin(2 pi) is 2e-7
    u = pde.u(pts).reshape(N_LINE, N_LINE).abs().numpy()  # u[i, j] at (xs[i], ys[j])
    i_max, j_max = np.unravel_index(np.argmax(u), u.shape)
    mid = N_LINE // 2
    out = []
    for axis, (j, across, values) in ((0, (mid, j_max, ys)), (1, (mid, i_max, xs))):
        on_mid = u[:, mid] if axis == 0 else u[mid, :]
        if on_mid.max() > 1e-6 * u.max():
            out.append((axis, values[mid], "through the middle"))
        else:
            out.append((axis, values[across], f"u = 0 on the middle line {'yx'[axis]} = {values[mid]:g}"))
    return out


@torch.no_grad()
def section_values(pde, fn, axis, value):
    """(coordinate along the line, fn on it) for the line where coordinate ``1 - axis`` equals value."""
    (lo, hi) = pde.domain[axis]
    t = torch.linspace(lo, hi, N_LINE, dtype=torch.float64)
    pts = torch.empty(N_LINE, 2, dtype=t.dtype)
    pts[:, axis], pts[:, 1 - axis] = t, value
    return t.numpy(), fn(pts).reshape(-1).double().numpy()


def draw(section, results, models, out_dir):
    best = best_rows(results)
    n_seeds = seed_count(results)
    paths = []
    for name in dataset_names(results):
        pde = exact(section, name)
        fams = list(selected_models(results, models, best, name))
        fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), squeeze=False)
        for col, (axis, value, note) in enumerate(lines(pde)):
            along, other = "xy"[axis], "yx"[axis]
            t, u = section_values(pde, pde.u, axis, value)
            top, bottom = axes[0][col], axes[1][col]
            top.plot(t, u, color="k", lw=2.4, alpha=0.35, label="exact u")
            for fam, row, model in fams:
                _, p = section_values(pde, model, axis, value)
                label = f"{NAMES[fam]} {row['config']}{seed_note(row, n_seeds)}"
                top.plot(t, p, color=COLORS[fam], lw=1.1, label=label)
                bottom.plot(t, np.maximum(np.abs(p - u), 1e-16), color=COLORS[fam], lw=1.1, label=NAMES[fam])
            top.set_title(f"along {other} = {value:.3g} ({note})")
            top.set_xlabel(along)
            top.set_ylabel(f"u({'x' if axis == 0 else f'{value:.3g}'}, {'y' if axis == 1 else f'{value:.3g}'})")
            bottom.set_yscale("log")
            bottom.set_title(f"|model - exact u| along {other} = {value:.3g}")
            bottom.set_xlabel(along)
            bottom.set_ylabel("absolute error")
        shared_legend(fig, [axes[0][0]])
        fig.suptitle(f"{section} {name}: exact solution and each family's selected model{which_seed(n_seeds)}")
        missing_note(fig, results)
        paths += save(fig, out_dir, f"cross_sections_{name}")
    return paths
