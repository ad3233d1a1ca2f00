"""Figure 1: per dataset, the truth and each family's best model, on the training domain."""
import torch

from visualization.style import (BEST_ROW_COLUMNS, COLORS, best_rows, dataset_names, families, grid_of_axes,
                                 missing_note, saved_model, save, short_label)

REQUIRED_COLUMNS = BEST_ROW_COLUMNS
NEEDS_MODELS = True


def truth(section, name):
    """(exact function, domain) of a dataset; PDE datasets plot their exact solution u."""
    if section == "section1_1":
        from utils.datasets import FUNCTIONS_1D
        return FUNCTIONS_1D[name], ((0.0, 1.0),)
    from utils.pde import PROBLEMS
    return PROBLEMS[name].u, PROBLEMS[name].domain


@torch.no_grad()
def draw(section, results, models, out_dir):
    names = dataset_names(results)
    best = best_rows(results)
    fig, axes = grid_of_axes(len(names))
    for ax, name in zip(axes, names):
        fn, ((lo, hi),) = truth(section, name)
        x = torch.linspace(lo, hi, 1000)[:, None]
        ax.plot(x, fn(x), color="k", lw=2.2, alpha=0.35, label="truth")
        for fam in families(results):
            row = best.get((name, fam))
            model = saved_model(models, fam, name, row)
            if model is None:
                continue
            ax.plot(x, model(x), color=COLORS[fam], lw=1.1, label=short_label(fam, row))
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.legend(loc="best")
    fig.suptitle(f"{section}: best model of each family (dense MSE on the training domain)")
    missing_note(fig, results)
    return save(fig, out_dir, "fits")
