"""Table: head to head. For each dataset and pair of families, in how many seeds the first family's
selected model has a lower dense error than the second's (``utils.analysis.stats.head_to_head``).

Medians can hide that one family wins every seed by a hair while the other wins one seed by orders
of magnitude; the counts say how often, the best_per_dataset table by how much.
"""
from utils.analysis.stats import head_to_head
from visualization.style import NAMES, families
from visualization.table_writers import write
from visualization.tables import caption

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse"}
HEADERS = ["dataset", "family A", "family B", "seeds", "A wins", "B wins", "ties"]


def draw(section, results, models, out_dir):
    t = head_to_head({f: results[f] for f in families(results)})
    t = t.drop(columns=["dataset_idx"]).assign(family_a=t["family_a"].map(NAMES), family_b=t["family_b"].map(NAMES))
    what = ("head to head: in how many seeds family A's selected model has a lower dense MSE than family "
            "B's (a diverged model loses; ties: equal errors or both diverged)")
    return write(out_dir, "head_to_head", t, t, HEADERS, caption(section, results, what, spread=False))
