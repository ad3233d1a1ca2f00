"""The command line every section script shares: parse, validate, sweep, save, summarize.

User mistakes end in one line on stderr and exit status 2, before anything is trained or written.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from utils.config import DEFAULT_EPOCHS, QUICK_EPOCHS, QUICK_PDE_POINTS
from utils.io import DEFAULT_RESULTS_DIR, RunError, save_run
from utils.sweep import FAMILIES, SETTINGS, build_tasks, collect, default_workers, run_sweep
from utils.summary import summary_text

MAX_SEED = 2 ** 32  # numpy's and pykan's seeds must lie in [0, 2**32)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def die(prog: str, message: str, status: int = 2):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, 2**32), got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description=description,
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"optimizer steps per model, one full-batch LBFGS step each; KANs spread them over "
                        f"their grid schedule (default 100, {QUICK_EPOCHS} with --quick)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_value, default=None,
                       help="one seed: data sampling and model initialization (default 0)")
    seeds.add_argument("--seeds", type=seed_value, nargs="+", default=None, metavar="S",
                       help="train every configuration for each of these seeds")
    seeds.add_argument("--n-seeds", type=positive_int, default=None, metavar="N", help="seeds 0 .. N-1")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where the run is saved")
    p.add_argument("--quick", action="store_true", help="a small sweep for smoke tests (seconds, not minutes)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="train only on these datasets (default: all of the section's)")
    p.add_argument("--models", nargs="+", choices=FAMILIES, default=list(FAMILIES), metavar="FAMILY",
                   help=f"families to train, a subset of: {' '.join(FAMILIES)}")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="worker processes, 1 torch thread each (default: the number of cores; 1 on cuda)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the tasks on a running Dask cluster, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--width", type=positive_int, default=SETTINGS["width"], help="MLP and SIREN hidden width")
    p.add_argument("--kan-width", type=positive_int, default=SETTINGS["kan_width"],
                   help="KAN hidden width: KAN(width=[n_in, KAN_WIDTH, 1])")
    p.add_argument("--prune-lamb", type=positive_float, default=SETTINGS["prune_lamb"],
                   help="pruned KAN: sparsity penalty of the sparsify stage, as pykan's fit(lamb=...)")
    p.add_argument("--prune-node-th", type=positive_float, default=SETTINGS["prune_node_th"],
                   help="pruned KAN: pykan's prune(node_th=...)")
    p.add_argument("--prune-edge-th", type=positive_float, default=SETTINGS["prune_edge_th"],
                   help="pruned KAN: pykan's prune(edge_th=...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def seeds_of(args) -> list[int]:
    if args.seeds:
        return list(dict.fromkeys(args.seeds))  # in the order given, each once
    if args.n_seeds:
        return list(range(args.n_seeds))
    return [0 if args.seed is None else args.seed]


def add_pde_arguments(parser, dim: int):
    """Options of the PDE sections; defaults follow the KAN paper (see utils/pde.py)."""
    from utils.pde import DEFAULTS
    d = DEFAULTS[dim]
    parser.add_argument("--mode", choices=["pinn", "supervised"], default="pinn",
                        help="pinn: train from the equation (interior residual + boundary loss); "
                             "supervised: fit u from 1000 samples, for comparison")
    parser.add_argument("--alpha", type=positive_float, default=d["alpha"], help="weight of the residual term")
    parser.add_argument("--n-interior", type=positive_int, default=None,
                        help=f"interior collocation points (default {d['n_interior']}; "
                             f"{QUICK_PDE_POINTS[dim][0]} with --quick)")
    if dim > 1:
        parser.add_argument("--n-boundary", type=positive_int, default=None,
                            help=f"boundary points (default {d['n_boundary']}; {QUICK_PDE_POINTS[dim][1]} with --quick)")
    parser.set_defaults(pde_dim=dim)


def pde_options(args) -> tuple:
    from utils.pde import DEFAULTS
    d = DEFAULTS[args.pde_dim]
    quick = QUICK_PDE_POINTS[args.pde_dim] if args.quick else (d["n_interior"], d["n_boundary"])
    n_int = args.n_interior or quick[0]
    n_bnd = getattr(args, "n_boundary", None) or quick[1]
    return (("mode", args.mode), ("alpha", args.alpha), ("n_interior", n_int), ("n_boundary", n_bnd))


def resolve_device(prog: str, name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        die(prog, "--device cuda: CUDA is not available on this machine (use --device cpu)")
    return name


def check_results_dir(prog: str, path: Path):
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        die(prog, f"--results-dir {path}: not writable ({e.strerror or e})")


def run_section(section: str, datasets, quick_datasets, description: str, argv=None,
                add_arguments=None, problem_options=None):
    """``datasets``: (dataset_idx, name) pairs; ``quick_datasets``: the names --quick keeps."""
    prog = f"{section}.py"
    parser = build_parser(prog, description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    device = resolve_device(prog, args.device)
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS)
    seeds = seeds_of(args)
    workers = args.workers or default_workers(device)
    check_results_dir(prog, args.results_dir)
    if args.datasets:
        known = [name for _, name in datasets]
        unknown = [n for n in args.datasets if n not in known]
        if unknown:
            die(prog, f"--datasets: unknown {', '.join(unknown)} (choose from {', '.join(known)})")
        datasets = [d for d in datasets if d[1] in args.datasets]
    elif args.quick:
        datasets = [d for d in datasets if d[1] in quick_datasets]
    families = [f for f in FAMILIES if f in args.models]
    options = problem_options(args) if problem_options else ()
    settings = {k: getattr(args, k) for k in SETTINGS}
    tasks = build_tasks(section, datasets, families, seeds, epochs, device, args.quick, options, settings)

    print(f"{section}: {len(tasks)} models ({', '.join(families)}) on {len(datasets)} datasets, "
          f"{epochs} epochs, {'seed' if len(seeds) == 1 else 'seeds'} {' '.join(map(str, seeds))}, device {device}, "
          f"{'Dask scheduler ' + args.scheduler if args.scheduler else f'{workers} worker(s)'}", flush=True)
    t0 = time.perf_counter()
    try:
        results = run_sweep(tasks, workers=workers, scheduler=args.scheduler, progress=not args.no_progress)
    except KeyboardInterrupt:
        die(prog, "interrupted; nothing was saved", 130)
    except OSError as e:
        if args.scheduler:
            die(prog, f"--scheduler {args.scheduler}: cannot reach the Dask scheduler ({e})")
        raise
    frames, models = collect(results)
    try:
        # a run's seeds are its seed column; only a one-seed run names its seed in the metadata
        ts = save_run(frames, section, models=models, results_dir=args.results_dir,
                      epochs=epochs, device=device, **({"seed": seeds[0]} if len(seeds) == 1 else {}))
    except (RunError, OSError) as e:
        die(prog, f"could not save the run: {e}", 1)

    print(f"\nTrained in {time.perf_counter() - t0:.1f} s.")
    print(summary_text(frames))
    print(f"\nSaved run {section} {ts}:")
    for name in sorted(p.name for p in args.results_dir.glob(f"{section}_{ts}_*")):
        print(f"  {args.results_dir / name}")
    return ts
