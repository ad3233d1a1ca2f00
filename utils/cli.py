"""The command line every section script shares: parse, validate, sweep with checkpoints, save, summarize.

User mistakes end in one line on stderr and exit status 2, before anything is trained or written
(not even a folder). A run saves each finished ensemble as it goes (``utils.io.save_partial``), so
an interrupt, a kill or a full disk loses only the ensembles in flight; ``--resume TIMESTAMP``
trains what is missing with the run's stored options and writes the complete run.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from pathlib import Path

from utils.config import DEFAULT_DTYPE, DEFAULT_EPOCHS, QUICK_EPOCHS, QUICK_PDE_POINTS
from utils.io import (DEFAULT_RESULTS_DIR, RunError, finish_run, list_unfinished, load_partial, save_partial,
                      start_run)
from utils.summary import summary_text
from utils.sweep import FAMILIES, SETTINGS, build_tasks, collect, default_workers, group, run_sweep

MAX_SEED = 2 ** 32  # numpy's and pykan's seeds must lie in [0, 2**32)
WORKER_MEMORY_GB = 0.45  # a worker process with torch, pykan and numba loaded, measured 0.34-0.55 GB
# Dask addresses: tcp://host:port, tls://host:port, ... or host:port
SCHEDULER_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss|inproc)://)?[^\s:/]+:\d{1,5}$")
# options that say how to run, not what: the only ones --resume takes from the command line
EXECUTION_OPTIONS = ("resume", "workers", "scheduler", "results_dir", "no_progress", "device")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def die(prog: str, message: str, status: int = 2):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


def _number(text: str, kind, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_value(text: str) -> int:
    value = _number(text, int, "a whole number")
    if not 0 <= value < MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, 2**32), got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    return Path(text)


def scheduler_address(text: str) -> str:
    if not SCHEDULER_ADDRESS.match(text):
        raise argparse.ArgumentTypeError(f"expected an address such as tcp://host:8786 or host:8786, got {text!r}")
    return text


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description=description,
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"optimizer steps per model, one full-batch LBFGS step each; KANs spread them over "
                        f"their grid schedule (default {DEFAULT_EPOCHS}, {QUICK_EPOCHS} with --quick)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available")
    p.add_argument("--dtype", choices=["float64", "float32"], default=DEFAULT_DTYPE,
                   help="training precision of every family (metrics are float64 either way)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_value, default=None,
                       help="one seed: data sampling and model initialization (default 0)")
    seeds.add_argument("--seeds", type=seed_value, nargs="+", default=None, metavar="S",
                       help="train every configuration for each of these seeds")
    seeds.add_argument("--n-seeds", type=positive_int, default=None, metavar="N", help="seeds 0 .. N-1")
    p.add_argument("--results-dir", type=folder, default=DEFAULT_RESULTS_DIR, help="where the run is saved")
    p.add_argument("--quick", action="store_true", help="a small sweep for smoke tests (seconds, not minutes)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="train only on these datasets (default: all of the section's)")
    p.add_argument("--models", nargs="+", choices=list(FAMILIES), default=list(FAMILIES), metavar="FAMILY",
                   help=f"families to train, a subset of: {' '.join(FAMILIES)}")
    p.add_argument("--width", type=positive_int, default=SETTINGS["width"], help="MLP and SIREN hidden width")
    p.add_argument("--kan-width", type=positive_int, default=SETTINGS["kan_width"],
                   help="KAN hidden width: KAN(width=[n_in, KAN_WIDTH, 1])")
    p.add_argument("--prune-lamb", type=positive_float, default=SETTINGS["prune_lamb"],
                   help="pruned KAN: sparsity penalty of the sparsify stage, as pykan's fit(lamb=...)")
    p.add_argument("--prune-node-th", type=positive_float, default=SETTINGS["prune_node_th"],
                   help="pruned KAN: pykan's prune(node_th=...)")
    p.add_argument("--prune-edge-th", type=positive_float, default=SETTINGS["prune_edge_th"],
                   help="pruned KAN: pykan's prune(edge_th=...)")
    p.add_argument("--one-by-one", action="store_true",
                   help="train every model alone instead of in ensembles (same numbers, slower; for comparison)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="worker processes, 1 torch thread each (default: the number of cores; 1 on cuda)")
    p.add_argument("--scheduler", type=scheduler_address, default=None, metavar="ADDRESS",
                   help="run the ensembles on a running Dask cluster, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--resume", default=None, metavar="TIMESTAMP",
                   help="finish an interrupted run: train only what is missing, with the run's stored options")
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
    """Writable (or creatable) without creating anything: a rejected command leaves no folders behind."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        die(prog, f"--results-dir {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        die(prog, f"--results-dir {path}: {existing} is not writable")


def plan(prog, section, args, datasets, quick_datasets, problem_options) -> dict:
    """The run's options: everything that decides its tasks, stored with it for --resume."""
    if args.datasets:
        known = [name for _, name in datasets]
        unknown = [n for n in args.datasets if n not in known]
        if unknown:
            die(prog, f"--datasets: unknown {', '.join(unknown)} (choose from {', '.join(known)})")
        datasets = [d for d in datasets if d[1] in args.datasets]
    elif args.quick:
        datasets = [d for d in datasets if d[1] in quick_datasets]
    return {"section": section, "datasets": list(datasets), "families": [f for f in FAMILIES if f in args.models],
            "seeds": seeds_of(args), "epochs": args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS),
            "device": resolve_device(prog, args.device), "quick": args.quick,
            "problem_options": problem_options(args) if problem_options else (),
            "settings": {k: getattr(args, k) for k in SETTINGS}, "together": not args.one_by_one,
            "dtype": args.dtype}


def resumed_plan(prog, section, args, parser) -> tuple[dict, dict]:
    """The stored options of the unfinished run ``args.resume`` and its finished units."""
    unfinished = list_unfinished(section, args.results_dir)
    if args.resume not in unfinished:
        have = f"unfinished runs: {', '.join(unfinished)}" if unfinished else "no unfinished runs"
        die(prog, f"--resume {args.resume}: no unfinished run of {section} in {args.results_dir} ({have})")
    try:
        options, done = load_partial(section, args.resume, args.results_dir)
    except RunError as e:
        die(prog, f"--resume {args.resume}: {e}")
    ignored = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
               if k not in EXECUTION_OPTIONS and k != "pde_dim" and v != parser.get_default(k)]
    if ignored:
        print(f"{prog}: note: --resume trains with the run's stored options; ignoring {', '.join(ignored)}",
              file=sys.stderr)
    if options["device"] == "cuda":
        resolve_device(prog, "cuda")
    return options, done


def tasks_of(options) -> list:
    return build_tasks(options["section"], options["datasets"], options["families"], options["seeds"],
                       options["epochs"], options["device"], options["quick"], options["problem_options"],
                       options["settings"], options.get("dtype", DEFAULT_DTYPE))


def unit_key(i: int, ensemble) -> str:
    """The name of an ensemble's partial result: its place in the (deterministic) list, and its family."""
    return f"{i:04d}_{ensemble.family}"


def worker_count(prog, args, device, n_units) -> int:
    """--workers, capped at the ensembles to train; a warning when they would not fit in memory."""
    workers = args.workers or default_workers(device)
    if workers > n_units and args.workers:
        print(f"{prog}: note: --workers {workers}: only {n_units} ensembles to train, using {max(n_units, 1)} "
              f"worker(s)", file=sys.stderr)
    workers = max(1, min(workers, n_units))
    try:
        import psutil
        available = psutil.virtual_memory().available / 2 ** 30
        if workers > 1 and workers * WORKER_MEMORY_GB > available:
            print(f"{prog}: warning: {workers} workers need about {workers * WORKER_MEMORY_GB:.1f} GB of memory, "
                  f"{available:.1f} GB are available; consider --workers {max(1, int(available / WORKER_MEMORY_GB))}",
                  file=sys.stderr)
    except ImportError:
        pass
    return workers


def run_section(section: str, datasets, quick_datasets, description: str, argv=None,
                add_arguments=None, problem_options=None):
    """``datasets``: (dataset_idx, name) pairs; ``quick_datasets``: the names --quick keeps."""
    prog = f"{section}.py"
    parser = build_parser(prog, description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    check_results_dir(prog, args.results_dir)
    if args.resume:
        options, done = resumed_plan(prog, section, args, parser)
    else:
        options, done = plan(prog, section, args, datasets, quick_datasets, problem_options), {}
    tasks = tasks_of(options)
    ensembles = group(tasks, options["together"])
    keys = [unit_key(i, e) for i, e in enumerate(ensembles)]
    finished = {i: done[k] for i, k in enumerate(keys) if k in done}
    workers = worker_count(prog, args, options["device"], len(ensembles) - len(finished))

    if args.scheduler:  # before anything is written: an unreachable cluster is a mistake in the command
        try:
            from distributed import Client
            Client(args.scheduler, timeout="10s").close()
        except OSError as e:
            die(prog, f"--scheduler {args.scheduler}: cannot reach the Dask scheduler ({e})")
    try:
        ts = args.resume or start_run(section, args.results_dir, options)
    except RunError as e:
        die(prog, f"could not start the run: {e}", 1)
    how = f"Dask scheduler {args.scheduler}" if args.scheduler else f"{workers} worker(s)"
    seeds = options["seeds"]
    print(f"{section} run {ts}: {len(tasks)} models ({', '.join(options['families'])}) in {len(ensembles)} ensembles"
          f"{f', {len(finished)} already done' if finished else ''}; {len(options['datasets'])} datasets, "
          f"{options['epochs']} epochs, {'seed' if len(seeds) == 1 else 'seeds'} {' '.join(map(str, seeds))}, "
          f"{options.get('dtype', DEFAULT_DTYPE)}, device {options['device']}, {how}. If interrupted, resume with: python {prog} --resume {ts}", flush=True)
    t0 = time.perf_counter()
    resume_hint = f"resume with: python {prog} --resume {ts}"
    try:
        results = run_sweep(tasks, workers=workers, scheduler=args.scheduler, progress=not args.no_progress,
                            together=options["together"], finished=finished,
                            on_result=lambda i, res: save_partial(section, ts, keys[i], res, args.results_dir))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one interrupt is enough: the rest is saving a line
        n = len(load_partial(section, ts, args.results_dir)[1])
        die(prog, f"interrupted: {n} of {len(ensembles)} ensembles are saved; {resume_hint}", 130)
    except RunError as e:
        die(prog, f"{e}; the finished ensembles are kept, {resume_hint} once that is fixed", 1)
    except OSError as e:
        if args.scheduler:
            die(prog, f"--scheduler {args.scheduler}: cannot reach the Dask scheduler ({e}); {resume_hint}")
        raise
    frames, models = collect(results)
    try:
        # a run's seeds are its seed column; only a one-seed run names its seed in the metadata
        finish_run(section, ts, frames, models=models, results_dir=args.results_dir, epochs=options["epochs"],
                   device=options["device"], dtype=options.get("dtype", DEFAULT_DTYPE),
                   **({"seed": seeds[0]} if len(seeds) == 1 else {}))
    except RunError as e:
        die(prog, f"could not save the run: {e}; the finished ensembles are kept, {resume_hint}", 1)
    print_summary(frames, time.perf_counter() - t0, options.get("dtype", DEFAULT_DTYPE))
    print(f"\nSaved run {section} {ts}:")
    for name in sorted(p.name for p in args.results_dir.glob(f"{section}_{ts}_*")):
        print(f"  {args.results_dir / name}")
    return ts


def print_summary(frames, seconds, dtype=None):
    print(f"\nTrained in {seconds:.1f} s.")
    print(summary_text(frames, dtype))
