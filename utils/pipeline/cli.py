"""The command line every section script shares: parse and check the command, then ``run.run`` it.

User mistakes end in one line on stderr and exit status 2, before anything is trained or written
(not even a folder), and parsing needs neither torch nor pandas: ``--help`` and a mistyped option
answer at once. A run saves each finished ensemble as it goes, so an interrupt, a kill or a full
disk loses only the ensembles in flight; ``--resume TIMESTAMP`` trains what is missing with the
run's stored options and writes the complete run.

Whatever stops a run ends in one line on stderr: Ctrl-C (exit 130) or SIGTERM, a batch system's
first signal (exit 143), with the resume command; a failing ensemble or save (exit 1), likewise.
Before the run starts (imports take seconds) an interrupt exits at once, nothing being written yet.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
from pathlib import Path

from utils import config, signals
from utils.config import DEFAULT_DTYPE, DEFAULT_EPOCHS, DEFAULT_RESULTS_DIR, MAX_SEED, QUICK_EPOCHS
from utils.device import CHOICES as DEVICES
from utils.device import ENGINES
from utils.families import FAMILIES, SETTINGS
from utils.pipeline.console import plural
from utils.sections import SECTIONS

# Upper bounds that catch a slip of the keyboard before it asks for terabytes (--width 1000000 is a
# 10^12-weight layer): a hundred to a thousand times what the protocol uses.
MAX_WIDTH, MAX_EPOCHS, MAX_POINTS = 1000, 100_000, 1_000_000
# What a worker process holds at its peak: section1_1.py --quick --n-seeds 5 --workers 2, each worker's
# resident memory sampled every 0.2 s with psutil: 1.00 GB (0.80 GB of it its own, USS)
WORKER_MEMORY_GB = 1.0
# Dask addresses: tcp://host:port, tls://host:port, ... or host:port; IPv6 hosts in brackets
SCHEDULER_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss|inproc)://)?"
                               r"(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(\d{1,5})$")
CONNECT_S, WORKERS_WAIT_S = 5, 10  # how long a Dask scheduler is given to answer, and to get its first worker
TIMESTAMP = re.compile(config.TIMESTAMP)
# options that say how to run, not what: the only ones --resume takes from the command line
EXECUTION_OPTIONS = ("resume", "workers", "scheduler", "results_dir", "no_progress", "device")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except where the help already says the default or there is none to say."""

    def _get_help_string(self, action):
        if "(default" in (action.help or "") or action.default is None:
            return action.help
        return super()._get_help_string(action)


class Terminated(KeyboardInterrupt):
    """SIGTERM, a batch system's first signal: stops a run as Ctrl-C does (exit 143 instead of 130)."""


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


def at_most(limit: int):
    """positive_int, up to ``limit``."""
    def check(text: str) -> int:
        value = positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit:,}, got {value:,}")
        return value
    return check


def seed_value(text: str) -> int:
    value = _number(text, int, "a whole number")
    if not 0 <= value < MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, 2**32), got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
    return value


def timestamp(text: str) -> str:
    """A run's timestamp; an empty one (an unset variable in a job script) must not start a new sweep."""
    if not TIMESTAMP.fullmatch(text):
        got = "an empty string" if not text else repr(text)
        raise argparse.ArgumentTypeError(f"must name a run's timestamp (like 20251022_203715), got {got}")
    return text


def folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty string")
    return Path(text)


def scheduler_address(text: str) -> str:
    m = SCHEDULER_ADDRESS.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected an address such as tcp://host:8786 or host:8786, got {text!r}")
    if not 1 <= int(m.group(1)) <= 65535:
        raise argparse.ArgumentTypeError(f"the port must lie in 1..65535, got {m.group(1)} in {text!r}")
    return text


def build_parser(section) -> argparse.ArgumentParser:
    """The section's command line: the options every section takes, and the section's own."""
    p = OneLineParser(prog=f"{section.name}.py", description=section.title,
                      formatter_class=DefaultsFormatter)
    p.add_argument("--epochs", type=at_most(MAX_EPOCHS), default=None,
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
    p.add_argument("--width", type=at_most(MAX_WIDTH), default=SETTINGS["width"], help="MLP and SIREN hidden width")
    p.add_argument("--kan-width", type=at_most(MAX_WIDTH), default=SETTINGS["kan_width"],
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
    p.add_argument("--resume", type=timestamp, default=None, metavar="TIMESTAMP",
                   help="finish an interrupted run: train only what is missing, with the run's stored options")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    section.add_arguments(p, positive_float, at_most(MAX_POINTS))
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
    sides = 2 * section.dim
    if getattr(args, "n_boundary", None) is not None and args.n_boundary < sides:  # spread over the sides evenly
        die(prog, f"--n-boundary: must be at least {sides} (a point on each side of the domain), got {args.n_boundary}")
    return {"section": section.name, "datasets": list(datasets),
            "families": [f for f in FAMILIES if f in args.models], "seeds": seeds_of(args),
            "epochs": args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS),
            "device": args.device, "quick": args.quick,
            "problem_options": section.problem_options(args),
            "settings": {k: getattr(args, k) for k in SETTINGS}, "together": not args.one_by_one,
            "dtype": args.dtype, "engine": args.engine}


def resumed_plan(prog, section, args, parser) -> tuple[dict, dict]:
    """The stored options of the unfinished run ``args.resume`` and its finished units, the run held
    by this process from here on: a second resume of it is refused instead of training it twice."""
    from utils.io import RunError, hold_run, list_unfinished, load_partial
    unfinished = list_unfinished(section.name, args.results_dir)
    if args.resume not in unfinished:
        have = f"unfinished runs: {', '.join(unfinished)}" if unfinished else "no unfinished runs"
        die(prog, f"--resume {args.resume}: no unfinished run of {section.name} in {args.results_dir} ({have})")
    try:
        hold_run(section.name, args.resume, args.results_dir)
    except RunError as e:
        die(prog, f"--resume {args.resume}: {e}; nothing was trained", 1)
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
        print(f"{prog}: note: --workers {workers}: only {plural(n_units, 'ensemble')} to train, using "
              f"{max(n_units, 1)} worker(s)", file=sys.stderr)
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


def check_scheduler(prog, address):
    """A Dask cluster that cannot run the sweep is refused before anything is written: one that cannot
    be reached, that has no workers (a run would wait in silence), or whose scheduler or workers cannot
    import this repository (distributed unpickles the task graph on the scheduler too)."""
    from distributed import Client

    def import_problem():  # defined here, so that it travels by value, not as a name in this repository
        import importlib
        try:
            importlib.import_module("utils.pipeline.sweep")
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        return None

    try:
        client = Client(address, timeout=CONNECT_S)
    except OSError as e:
        die(prog, f"--scheduler {address}: cannot reach the Dask scheduler ({e})")
    path = f"PYTHONPATH={Path(__file__).resolve().parents[2]}"
    with client:
        problem = client.run_on_scheduler(import_problem)
        if problem:
            die(prog, f"--scheduler {address}: the Dask scheduler cannot import this repository ({problem}); "
                      f"start it with {path}")
        if not client.scheduler_info()["workers"]:
            try:
                client.wait_for_workers(1, timeout=WORKERS_WAIT_S)
            except TimeoutError:
                die(prog, f"--scheduler {address}: the Dask scheduler has no workers (none joined within "
                          f"{WORKERS_WAIT_S} s; start some with: dask worker {address} --nthreads 1)")
        problems = {worker: p for worker, p in client.run(import_problem).items() if p}
        if problems:
            worker, problem = next(iter(problems.items()))
            die(prog, f"--scheduler {address}: {plural(len(problems), 'Dask worker')} cannot import this repository "
                      f"({worker}: {problem}); start them with {path}")


def _quit_before_start(prog):
    """Until the run starts nothing is written, and the imports (seconds) would print their traceback."""
    def handler(signum, frame):
        what = "interrupted" if signum == signal.SIGINT else "terminated"
        print(f"{prog}: {what} before the run started; nothing was trained or written", file=sys.stderr, flush=True)
        os._exit(128 + signum)
    return handler


def _terminate(signum, frame):
    raise Terminated()


def _stopped(what, prog, section, ts, results_dir, n_ensembles) -> str:
    """What an interrupted run left, in one line: nothing yet, some ensembles saved, or the complete run."""
    from utils.io import RunError, list_runs
    from utils.pipeline import run
    if ts is None:
        return f"{what} before the run started; nothing was trained or written"
    if ts in list_runs(section, results_dir):
        return f"{what} after run {section} {ts} was completely written: it is complete, nothing to resume"
    try:
        saved = f"{run.saved_units(section, ts, results_dir)} of {n_ensembles}"
    except RunError:
        saved = "some"
    return f"{what}: {saved} ensembles are saved; resume with: python {prog} --resume {ts}"


def main(section_name: str, argv=None):
    """A section script: parse, check, then train with checkpoints, save and summarize."""
    section = SECTIONS[section_name]
    prog = f"{section.name}.py"
    previous = signals.route(_quit_before_start(prog))
    try:
        return _main(section, prog, argv)
    finally:  # after a run stopped by a signal they stay ignored: a second Ctrl-C while exiting is no traceback
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signals.restore(previous)


def _main(section, prog, argv):
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
    from utils.pipeline.sweep import EnsembleError
    ensembles = run.ensembles_of(options)
    keys = [run.unit_key(i, e) for i, e in enumerate(ensembles)]
    on_cpu = [k for k, e in zip(keys, ensembles) if e.device == "cpu" and k not in done]
    workers = worker_count(prog, args, "cpu" if on_cpu else "cuda", len(on_cpu) or 1)
    if args.scheduler:
        check_scheduler(prog, args.scheduler)

    signals.route(signal.default_int_handler, _terminate)  # from here a signal stops the run, keeping what finished
    ts = args.resume
    try:
        ts = ts or run.start(options, args.results_dir)
        run.run(options, ts, results_dir=args.results_dir, workers=workers, scheduler=args.scheduler,
                progress=not args.no_progress, done=done, prog=prog, notes=notes)
    except KeyboardInterrupt as e:
        signals.route(signal.SIG_IGN)  # one signal is enough: the rest is saving a line
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        die(prog, _stopped(what, prog, section.name, ts, args.results_dir, len(ensembles)),
            143 if isinstance(e, Terminated) else 130)
    except (RunError, EnsembleError) as e:
        if ts is None:
            die(prog, f"could not start the run: {e}", 1)
        die(prog, f"{e}; the finished ensembles are kept, resume with: python {prog} --resume {ts} once that is "
                  f"fixed", 1)
    except OSError as e:
        if args.scheduler:
            die(prog, f"--scheduler {args.scheduler}: cannot reach the Dask scheduler ({e}); resume with: "
                      f"python {prog} --resume {ts}")
        raise
    return ts
