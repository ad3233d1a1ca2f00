"""Table: time to accuracy. Per dataset and family, the median over seeds of the epochs and the
training seconds the selected configuration took to first reach a dense MSE of 1e-3 and of 1e-5
(``utils.analysis.stats.time_to_accuracy``); "not reached" where half of the seeds or more never did.
"""
import math

from utils.analysis.stats import THRESHOLDS, time_to_accuracy
from visualization.style import NAMES, families
from visualization.table_writers import write
from visualization.tables import caption, wall_time_note

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "wall_time"}
NOT_REACHED = "not reached"


def cell(value, digits=None):
    """A median: 'not reached' for +inf; epochs (digits None) whole unless a median of two fell between."""
    if math.isinf(value):
        return NOT_REACHED
    if math.isnan(value):
        return "NaN"
    return f"{value:g}" if digits is None else f"{value:.{digits}f}"


def draw(section, results, models, out_dir):
    t = time_to_accuracy({f: results[f] for f in families(results)})
    t = t.drop(columns=["dataset_idx"]).assign(family=t["family"].map(NAMES))
    shown = t[["dataset", "family", "config"]].copy()
    headers = ["dataset", "family", "configuration"]
    for th in THRESHOLDS:
        k = f"{th:.0e}"
        shown[f"e{k}"] = [cell(v) for v in t[f"epochs_to_{k}"]]
        shown[f"s{k}"] = [cell(v, 3) for v in t[f"seconds_to_{k}"]]
        shown[f"r{k}"] = [f"{r}/{n}" for r, n in zip(t[f"reached_{k}"], t["seeds"])]
        headers += [f"epochs to {k}", f"seconds to {k}", f"seeds reaching {k}"]
    what = ("time to accuracy: median over seeds of the epochs (LBFGS steps) and training seconds the selected "
            "configuration took to first reach each dense MSE (KAN: up to the end of its selected grid stage; "
            "pruned KAN: with its pruned network, counted from the start of training); not reached: by half "
            "of the seeds or fewer")
    return write(out_dir, "time_to_accuracy", t, shown, headers, caption(section, results, what) + wall_time_note(results))
