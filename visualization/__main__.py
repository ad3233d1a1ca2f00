"""python -m visualization SECTION [--timestamp TS] [--out DIR]: every figure and table of a run.

Figures are drawn from the saved run alone: its DataFrames and its saved models.

A figure module has ``draw(section, results, models, out_dir) -> [paths written]`` and may declare
what it needs, which is checked before it is called:

    APPLIES_TO = {"dim": 2}                          # the sections it is for (fields of utils.sections.Section)
    REQUIRED_COLUMNS = {"epoch", "test_loss", ...}   # columns it reads in every family's DataFrame
    NEEDS_MODELS = True                              # it draws the run's trained models

A figure whose needs the run does not meet (an older run without ``wall_time``, a run whose models
file is missing or damaged) is skipped with one line on stderr naming what it lacks; a KeyError or
ValueError from ``draw`` also skips that figure (one line naming it, its files removed). Every
other figure is still drawn. A figure that cannot be written (a full disk) ends the command in one
line naming the folder or file and the cause, exit status 1, without half-written files; what was
drawn before it is kept. Configuration columns of one family (``grid_size``, ``depth``) are part of
that family's schema and are not declared.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from utils.io import DEFAULT_RESULTS_DIR, RunError, load_run
from utils.pipeline.console import say
from utils.sections import SECTIONS
from visualization import (cross_sections, curves, curves_walltime, efficiency, fields2d, fits, grid_extension,
                           head_to_head, pareto, pde_training, surfaces, tables, time_to_accuracy)

PROG = "visualization"
# every figure and table, in the order they are drawn; each says which sections it is for (APPLIES_TO)
FIGURES = [fits, fields2d, cross_sections, surfaces, curves, curves_walltime, pareto, grid_extension, pde_training,
           tables, head_to_head, efficiency, time_to_accuracy]


def figures_of(section) -> list:
    """The figure modules that apply to a section (a Section), by what each declares."""
    return [m for m in FIGURES if all(getattr(section, k) == v for k, v in getattr(m, "APPLIES_TO", {}).items())]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m visualization", description=__doc__.split("\n\n")[0])
    p.add_argument("section", help=f"one of: {', '.join(SECTIONS)}")
    p.add_argument("--timestamp", default=None, help="which run (default: the latest complete one)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: results/figures/<section>_<TS>)")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where runs are stored")
    args = p.parse_args(argv)
    if args.section not in SECTIONS:
        return _error(f"unknown section {args.section!r} (choose from {', '.join(SECTIONS)})")
    if args.out is not None and (problem := _unwritable(args.out)):
        return _error(f"--out {args.out}: {problem}")
    try:
        results, meta, models, models_problem = _load(args.section, args.timestamp, args.results_dir)
    except RunError as e:
        return _error(str(e))
    out = args.out or args.results_dir / "figures" / f"{args.section}_{meta['timestamp']}"
    if problem := _unwritable(out):
        return _error(f"{out}: {problem}")

    written, skipped, existed = [], 0, out.exists()
    for module in figures_of(SECTIONS[args.section]):
        reason = _unmet_needs(module, results, models_problem)
        if reason is None:
            try:
                paths, reason = _draw(module, args.section, results, models, out)
            except OSError as e:
                if not existed and out.is_dir() and not any(out.iterdir()):
                    out.rmdir()
                kept = f"the {len(written)} files written before it are kept" if written else "nothing was written"
                return _error(f"{e.filename or out}: could not write {_name(module)} ({e.strerror or e}); {kept}", 1)
            written += paths
        if reason is not None:
            skipped += 1
            print(f"{PROG}: skipped {_name(module)}: {reason}", file=sys.stderr)
    note = f" ({skipped} skipped)" if skipped else ""
    say(f"{args.section} {meta['timestamp']}: {len(written)} files in {out}{note}")
    for path in written:
        say(f"  {path}")
    return 0


def _error(message: str, status: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


def _name(module) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def _unwritable(out: Path):
    """Why figures cannot be written into ``out`` (None if they can); creates nothing."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        return f"not writable ({e.strerror or e})"
    return None


def _load(section, timestamp, results_dir):
    """(results, meta, models, why there are no models or None).

    A run without usable models (none saved, a damaged models file) still gives every figure that
    does not draw models: the models' problem is kept to name it where a figure is skipped.
    """
    try:
        return (*load_run(section, timestamp, results_dir=results_dir, load_models=True), None)
    except RunError as e:
        results, meta = load_run(section, timestamp, results_dir=results_dir)  # the run itself is fine?
        return results, meta, {}, str(e)


def _unmet_needs(module, results, models_problem):
    """Why the run cannot give this figure, from the module's declarations (None if it can)."""
    if getattr(module, "NEEDS_MODELS", False) and models_problem:
        return f"needs the run's models ({models_problem})"
    for column in sorted(getattr(module, "REQUIRED_COLUMNS", ())):
        lacking = [family for family, df in results.items() if column not in df.columns]
        if lacking:
            return f"needs column '{column}', which {', '.join(lacking)} lack{'s' if len(lacking) == 1 else ''}"
    return None


def _draw(module, section, results, models, out):
    """(paths, None), or ([], reason) when draw() meets data it cannot use; nothing of it is left,
    whatever stops it (an OSError such as a full disk propagates)."""
    before = set(out.iterdir()) if out.is_dir() else set()
    try:
        return module.draw(section, results, models, out), None
    except BaseException as e:
        plt.close("all")
        for path in (set(out.iterdir()) if out.is_dir() else set()) - before:
            if path.is_file():
                path.unlink(missing_ok=True)
        if not isinstance(e, (KeyError, ValueError, IndexError, TypeError)):
            raise
        text = " ".join(str(e).split())[:200]  # data of a shape it cannot use: skip it
        return [], f"{type(e).__name__} {text} (the run lacks something it needs)"


if __name__ == "__main__":
    sys.exit(main())
