"""python -m visualization SECTION [--timestamp TS] [--out DIR]: every figure and table of a run.

Figures are drawn from the saved run alone: its DataFrames and its saved models.
"""
import argparse
import sys
from pathlib import Path

from utils.io import DEFAULT_RESULTS_DIR, RunError, load_run
from visualization import (cross_sections, curves, efficiency, fields2d, fits, grid_extension, head_to_head, pareto,
                           pde_training, surfaces, tables, time_to_accuracy)

TABLES = [tables, head_to_head, efficiency, time_to_accuracy]
FIGURES = {  # which figure families apply to which section
    "section1_1": [fits, curves, pareto, grid_extension, *TABLES],
    "section1_2": [fits, curves, pareto, grid_extension, pde_training, *TABLES],
    "section1_3": [fields2d, cross_sections, surfaces, curves, pareto, grid_extension, pde_training, *TABLES],
}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m visualization", description=__doc__.split("\n\n")[0])
    p.add_argument("section", help=f"one of: {', '.join(FIGURES)}")
    p.add_argument("--timestamp", default=None, help="which run (default: the latest)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: results/figures/<section>_<TS>)")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where runs are stored")
    args = p.parse_args(argv)
    prog = "visualization"
    if args.section not in FIGURES:
        print(f"{prog}: error: unknown section {args.section!r} (choose from {', '.join(FIGURES)})", file=sys.stderr)
        return 2
    try:
        results, meta, models = _load(args.section, args.timestamp, args.results_dir)
    except RunError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    out = args.out or args.results_dir / "figures" / f"{args.section}_{meta['timestamp']}"
    written = []
    for module in FIGURES[args.section]:
        written += module.draw(args.section, results, models, out)
    print(f"{args.section} {meta['timestamp']}: {len(written)} files in {out}")
    for path in written:
        print(f"  {path}")
    return 0


def _load(section, timestamp, results_dir):
    """The run with its models; a run saved without models still gives every figure but the fits."""
    try:
        return load_run(section, timestamp, results_dir=results_dir, load_models=True)
    except RunError as e:
        if "saved no models" not in str(e):
            raise
        results, meta = load_run(section, timestamp, results_dir=results_dir)
        return results, meta, {}


if __name__ == "__main__":
    sys.exit(main())
