"""Are two saved runs the same numbers? python bench/compare_runs.py DIR_A DIR_B [--section S] [--dataset NAME]

Each DIR holds one complete run of the section (the latest is taken, or ``--ts-a``/``--ts-b``). For
every family both runs have, the rows (of one dataset with ``--dataset``) are compared bit for bit in
every column but ``wall_time``; exit status 0 when all are equal. What it answers: does a change of
code keep every number (runs of the previous commit against the new one), and does a part of a sweep
(``--datasets sin_freq1``) give the whole sweep's rows for that part.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.io import load_run  # noqa: E402


def rows(results, family, dataset):
    df = results[family]
    if dataset:
        df = df[df["dataset_name"] == dataset]
    return df.drop(columns="wall_time").reset_index(drop=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir_a", type=Path)
    ap.add_argument("dir_b", type=Path)
    ap.add_argument("--section", default="section1_1")
    ap.add_argument("--ts-a", default=None)
    ap.add_argument("--ts-b", default=None)
    ap.add_argument("--dataset", default=None, help="compare only this dataset's rows")
    args = ap.parse_args(argv)
    a, meta_a = load_run(args.section, args.ts_a, results_dir=args.dir_a)
    b, meta_b = load_run(args.section, args.ts_b, results_dir=args.dir_b)
    print(f"{args.section}: {meta_a['timestamp']} ({meta_a.get('dtype')}) against {meta_b['timestamp']} "
          f"({meta_b.get('dtype')}){f', dataset {args.dataset}' if args.dataset else ''}")
    same = True
    for family in [f for f in a if f in b]:
        ra, rb = rows(a, family, args.dataset), rows(b, family, args.dataset)
        try:
            pd.testing.assert_frame_equal(ra, rb, check_exact=True)
            print(f"  {family}: {len(ra)} rows, identical in every column but wall_time")
        except AssertionError as e:
            same = False
            print(f"  {family}: DIFFERENT ({len(ra)} and {len(rb)} rows): {' '.join(str(e).split())[:300]}")
    only = sorted(set(a) ^ set(b))
    if only:
        print(f"  in one run only: {', '.join(only)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
