"""Figure 2b: the learning curves of ``curves`` against cumulative training wall time.

Older runs recorded one constant ``total_time`` per model instead of the cumulative ``wall_time``
of every epoch; for them this figure is skipped and the curves against epoch are still drawn.
"""
from visualization.curves import REQUIRED_COLUMNS as _CURVES_COLUMNS
from visualization.curves import learning_curves

REQUIRED_COLUMNS = _CURVES_COLUMNS | {"wall_time"}


def draw(section, results, models, out_dir):
    return learning_curves(section, results, out_dir, "wall_time", "training wall time (s)", "curves_walltime")
