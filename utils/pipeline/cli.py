"""The command line every section script shares: parse and check the command, then ``run.run`` it.

User mistakes end in one line on stderr and exit status 2, before anything is trained or written
(not even a folder), and parsing needs neither torch nor pandas: ``--help`` and a mistyped option
answer at once. A run saves each finished ensemble as it goes, so an interrupt, a kill or a full
disk loses only the ensembles in flight; ``--resume TIMESTAMP`` trains what is missing with the
run's stored options and writes the complete run.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from utils.config import DEFAULT_DTYPE, DEFAULT_EPOCHS, DEFAULT_RESULTS_DIR, QUICK_EPOCHS
from utils.device import CHOICES as DEVICES
from utils.device import ENGINES
from utils.families import FAMILIES, SETTINGS
from utils.sections import SECTIONS

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


def build_parser(section) -> argparse.ArgumentParser:
    """The section's command line: the options every section takes, and the section's own."""
    p = OneLineParser(prog=f"{section.name}.py", description=section.title,
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"optimizer steps per model, one full-batch LBFGS step each; KANs spread them over "
                        f"their grid schedule (default {DEFAULT_EPOCHS}, {QUICK_EPOCHS} with --quick)")
    p.add_argument("--device", choices=list(DEVICES), default="auto",
                   help="auto: each family where the sweep finishes soonest, the CPU workers or a GPU (a cost model, "
                        "printed in the run's header); cpu, cuda: every family there")
    p.add_argument("--dtype", choices=["float64", "float32"], default=DEFAULT_DTYPE,
                   help="training precision of every family (metrics are float64 either way)")
    p.add_argument("--engine", choices=list(ENGINES), default="auto",
                   help="the optimizer: host (driven from Python, the faster on a CPU), resident (on the device, "
                        "no host round trips, replayed as CUDA graphs on a GPU); auto: resident on cuda, host on cpu")
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
    section.add_arguments(p, positive_float, positive_int)
    return p


def seeds_of(args) -> list[int]:
    if args.seeds:
        return list(dict.fromkeys(args.seeds))  # in the order given, each once
    if args.n_seeds:
        return list(range(args.n_seeds))
    return [0 if args.seed is None else args.seed]


def resolve_device(prog: str, name: str) -> str:
    from utils.device import DeviceError, resolve
    try:
        return resolve(name)
    except DeviceError as e:
        die(prog, str(e))


def check_results_dir(prog: str, path: Path):
    """Writable (or creatable) without creating anything: a rejected command leaves no folders behind."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        die(prog, f"--results-dir {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        die(prog, f"--results-dir {path}: {existing} is not writable")


def plan(prog, section, args) -> dict:
    """The run's options: everything that decides its tasks, stored with it for --resume."""
    datasets = section.datasets
    if args.datasets:
        known = [name for _, name in datasets]
        unknown = [n for n in args.datasets if n not in known]
        if unknown:
            die(prog, f"--datasets: unknown {', '.join(unknown)} (choose from {', '.join(known)})")
        datasets = [d for d in datasets if d[1] in args.datasets]
    elif args.quick:
        datasets = [d for d in datasets if d[1] in section.quick]
    resolve_device(prog, args.device)  # --device cuda on a machine without CUDA: refused here
    return {"section": section.name, "datasets": list(datasets),
            "families": [f for f in FAMILIES if f in args.models], "seeds": seeds_of(args),
            "epochs": args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS),
            "device": args.device, "quick": args.quick,
            "problem_options": section.problem_options(args),
            "settings": {k: getattr(args, k) for k in SETTINGS}, "together": not args.one_by_one,
            "dtype": args.dtype, "engine": args.engine}


def resumed_plan(prog, section, args, parser) -> tuple[dict, dict]:
    """The stored options of the unfinished run ``args.resume`` and its finished units."""
    from utils.io import RunError, list_unfinished, load_partial
    unfinished = list_unfinished(section.name, args.results_dir)
    if args.resume not in unfinished:
        have = f"unfinished runs: {', '.join(unfinished)}" if unfinished else "no unfinished runs"
        die(prog, f"--resume {args.resume}: no unfinished run of {section.name} in {args.results_dir} ({have})")
    try:
        options, done = load_partial(section.name, args.resume, args.results_dir)
    except RunError as e:
        die(prog, f"--resume {args.resume}: {e}")
    ignored = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
               if k not in EXECUTION_OPTIONS and v != parser.get_default(k)]
    if ignored:
        print(f"{prog}: note: --resume trains with the run's stored options; ignoring {', '.join(ignored)}",
              file=sys.stderr)
    if "cuda" in (options.get("devices") or {"": options["device"]}).values():
        resolve_device(prog, "cuda")
    return options, done


def place_families(prog, args, options) -> list[str]:
    """Each family's device (``options["devices"]``, a new run's decision); the header's line that
    says where the families train and why (``--device auto`` with a GPU). ``--device cuda`` is
    honoured, with a note on stderr where the estimates say the CPUs would be faster."""
    from utils.pipeline import run
    machine = args.workers or os.cpu_count() or 1
    placement = run.placement(options, machine)
    options["devices"] = placement.devices
    if args.device == "auto" and placement.cuda:
        return [f"device auto: {placement.header()}"]
    if args.device == "cuda" and placement.all_cpu < placement.all_gpu:
        print(f"{prog}: note: --device cuda: est. {placement.all_gpu:.0f} s on cuda against "
              f"{placement.all_cpu:.0f} s on {machine} CPU worker{'s' if machine != 1 else ''} "
              f"(--device auto puts each family where it finishes soonest)", file=sys.stderr)
    return []


def worker_count(prog, args, device, n_units) -> int:
    """--workers, capped at the ensembles to train; a warning when they would not fit in memory."""
    from utils.device import default_workers
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


def main(section_name: str, argv=None):
    """A section script: parse, check, then train with checkpoints, save and summarize."""
    section = SECTIONS[section_name]
    prog = f"{section.name}.py"
    parser = build_parser(section)
    args = parser.parse_args(argv)
    check_results_dir(prog, args.results_dir)
    if args.resume:
        options, done = resumed_plan(prog, section, args, parser)
        notes = []
    else:
        options, done = plan(prog, section, args), {}
        notes = place_families(prog, args, options)
    from utils.io import RunError
    from utils.pipeline import run
    ensembles = run.ensembles_of(options)
    keys = [run.unit_key(i, e) for i, e in enumerate(ensembles)]
    on_cpu = [k for k, e in zip(keys, ensembles) if e.device == "cpu" and k not in done]
    workers = worker_count(prog, args, "cpu" if on_cpu else "cuda", len(on_cpu) or 1)

    if args.scheduler:  # before anything is written: an unreachable cluster is a mistake in the command
        try:
            from distributed import Client
            Client(args.scheduler, timeout="5s").close()
        except OSError as e:
            die(prog, f"--scheduler {args.scheduler}: cannot reach the Dask scheduler ({e})")
    try:
        ts = args.resume or run.start(options, args.results_dir)
    except RunError as e:
        die(prog, f"could not start the run: {e}", 1)
    resume_hint = f"resume with: python {prog} --resume {ts}"
    try:
        run.run(options, ts, results_dir=args.results_dir, workers=workers, scheduler=args.scheduler,
                progress=not args.no_progress, done=done, prog=prog, notes=notes)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one interrupt is enough: the rest is saving a line
        n = run.saved_units(section.name, ts, args.results_dir)
        die(prog, f"interrupted: {n} of {len(ensembles)} ensembles are saved; {resume_hint}", 130)
    except RunError as e:
        die(prog, f"{e}; the finished ensembles are kept, {resume_hint} once that is fixed", 1)
    except OSError as e:
        if args.scheduler:
            die(prog, f"--scheduler {args.scheduler}: cannot reach the Dask scheduler ({e}); {resume_hint}")
        raise
    return ts
