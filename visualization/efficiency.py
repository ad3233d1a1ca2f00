"""Table: efficiency per family: time per epoch (mean and standard deviation), parameter counts,
configurations, seeds, training runs and epochs (``utils.analysis.stats.efficiency``).

Time per epoch is the difference of consecutive cumulative ``wall_time`` values of a training run
(metrics excluded, as the sweep records them), pooled over every epoch of every run of the family.
"""
from utils.analysis.stats import efficiency
from visualization.style import NAMES, families
from visualization.table_writers import write
from visualization.tables import caption, wall_time_note

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "wall_time", "num_params"}
HEADERS = ["family", "time per epoch, mean (s)", "std (s)", "parameters", "configurations", "seeds",
           "training runs", "epochs"]


def draw(section, results, models, out_dir):
    t = efficiency({f: results[f] for f in families(results)})
    shown = t.assign(family=t["family"].map(NAMES),
                     epoch_seconds_mean=t["epoch_seconds_mean"].map(lambda v: f"{v:.4f}"),
                     epoch_seconds_std=t["epoch_seconds_std"].map(lambda v: f"{v:.4f}"),
                     params_min=[f"{a} to {b}" if a != b else str(a) for a, b in zip(t["params_min"], t["params_max"])]
                     ).drop(columns=["params_max"])
    what = ("training cost per family: time per epoch (one LBFGS step; the difference of consecutive cumulative "
            "wall times, over every epoch of every run, all datasets and seeds), parameters at the end of each "
            "configuration (pruned KAN: pruned stages), configurations (KAN: grid stages)")
    return write(out_dir, "efficiency", t.assign(family=t["family"].map(NAMES)), shown, HEADERS,
                 caption(section, results, what, spread=False) + wall_time_note(results))
