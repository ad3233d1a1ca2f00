"""Running a sweep from its options: what the command line, ``utils.api`` and the benches share.

A run's *options* are plain data (stored with an unfinished run for ``--resume``): the section,
its datasets, families, seeds, epochs, device, precision, problem options and settings. ``train``
turns them into DataFrames and trained models in memory; ``run`` does the same with checkpoints, the
storage contract and the end-of-run summary, as the section scripts do.
"""
from __future__ import annotations

import time

from utils.analysis.summary import summary_text
from utils import config
from utils.config import DEFAULT_DTYPE
from utils.device import Work, place
from utils.io import RunError, finish_run, load_partial, save_partial, start_run
from utils.pipeline.console import plural, say
from utils.pipeline.sweep import build_tasks, collect, group, run_sweep


def tasks_of(options) -> list:
    """The run's tasks, in their fixed order (dataset, family, configuration, seed), each on its
    family's device (``options["devices"]``, decided by ``placement``; older runs: one device)."""
    return build_tasks(options["section"], options["datasets"], options["families"], options["seeds"],
                       options["epochs"], options.get("devices") or options["device"], options.get("quick", False),
                       options.get("problem_options", ()), options.get("settings"),
                       options.get("dtype", DEFAULT_DTYPE), options.get("configs"), options.get("grids"),
                       options.get("engine", "auto"))


def works(options) -> list:
    """The run's ensembles as the device cost model sees them (``utils.device.Work``)."""
    problem = dict(options.get("problem_options", ()))
    pinn = problem.get("mode") == "pinn"
    points = (problem.get("n_interior", 0) + problem.get("n_boundary", 0)) if pinn else config.N_TRAIN
    return [Work(e.family, "pinn" if pinn else "regression", len(e.tasks), e.epochs, points,
                 dict(e.config).get("depth", 4))
            for e in ensembles_of({**options, "device": "cpu", "devices": None})]  # ensembles before placement


def placement(options, workers: int, cuda=None):
    """Where each family of the run trains (``utils.device.place`` on the run's ``device``)."""
    return place(options["device"], works(options), workers, options.get("engine", "auto"), cuda)


def devices_label(options) -> str:
    """"device cpu", or each family's device where they differ."""
    devices = options.get("devices") or dict.fromkeys(options["families"], options["device"])
    if len(set(devices.values())) == 1:
        return f"device {next(iter(devices.values()))}"
    by = {}
    for family, device in devices.items():
        by.setdefault(device, []).append(family)
    return "devices " + "; ".join(f"{', '.join(fams)} on {device}" for device, fams in by.items())


def unit_key(i: int, ensemble) -> str:
    """The name of an ensemble's partial result: its place in the (deterministic) list, and its family."""
    return f"{i:04d}_{ensemble.family}"


def train(options, *, section=None, workers=1, scheduler=None, progress=False):
    """(DataFrames by family, models[family][dataset][key] as specs) of a sweep, nothing written.

    ``section``: a Section not in the registry (``utils.api``'s own problem; in this process only).
    """
    tasks = tasks_of(options)
    results = run_sweep(tasks, workers=workers, scheduler=scheduler, progress=progress,
                        together=options.get("together", True), section=section)
    return collect(results)


def start(options, results_dir) -> str:
    """Claim a new run's timestamp and store its options (``--resume`` reads them back)."""
    return start_run(options["section"], results_dir, options)


def run(options, ts, *, results_dir, workers, scheduler=None, progress=True, done=None, prog=None, notes=()):
    """The checkpointed sweep of the run ``ts`` (``start``ed, or resumed with its finished units
    ``done``): every finished ensemble saved as it finishes, then the complete run written and
    summarized. Interrupts, failing ensembles, failed saves and an unreachable scheduler propagate
    (KeyboardInterrupt, EnsembleError, RunError, OSError) with what finished kept for ``--resume ts``.
    ``notes``: lines printed after the run's header (the device decision). What it prints survives a
    closed pipe (``| head -1``): the run is saved all the same.
    """
    section = options["section"]
    prog = prog or f"{section}.py"
    tasks = tasks_of(options)
    ensembles = group(tasks, options.get("together", True))
    keys = [unit_key(i, e) for i, e in enumerate(ensembles)]
    finished = {i: (done or {})[k] for i, k in enumerate(keys) if k in (done or {})}
    how = f"Dask scheduler {scheduler}" if scheduler else f"{workers} worker(s)"
    seeds, dtype = options["seeds"], options.get("dtype", DEFAULT_DTYPE)
    say(f"{section} run {ts}: {plural(len(tasks), 'model')} ({', '.join(options['families'])}) in "
        f"{plural(len(ensembles), 'ensemble')}{f', {len(finished)} already done' if finished else ''}; "
        f"{plural(len(options['datasets']), 'dataset')}, {plural(options['epochs'], 'epoch')}, "
        f"{'seed' if len(seeds) == 1 else 'seeds'} {' '.join(map(str, seeds))}, {dtype}, {devices_label(options)}, "
        f"{how}. If interrupted, resume with: python {prog} --resume {ts}")
    for note in notes:
        say(note)
    t0 = time.perf_counter()
    results = run_sweep(tasks, workers=workers, scheduler=scheduler, progress=progress,
                        together=options.get("together", True), finished=finished,
                        on_result=lambda i, res: save_partial(section, ts, keys[i], res, results_dir))
    frames, models = collect(results)
    try:  # a run's seeds are its seed column; only a one-seed run names its seed in the metadata
        finish_run(section, ts, frames, models=models, results_dir=results_dir, epochs=options["epochs"],
                   device=options.get("devices") or options["device"], dtype=dtype,
                   engine={t.family: t.engine for t in tasks},
                   **({"seed": seeds[0]} if len(seeds) == 1 else {}))
    except RunError as e:
        raise RunError(f"could not save the run: {e}") from None
    say(f"\nTrained in {time.perf_counter() - t0:.1f} s.")
    say(summary_text(frames, dtype))
    say(f"\nSaved run {section} {ts}:")
    for name in sorted(p.name for p in results_dir.glob(f"{section}_{ts}_*")):
        say(f"  {results_dir / name}")
    return ts


def ensembles_of(options) -> list:
    """The run's ensembles, in their fixed order (what its partial results are keyed by)."""
    return group(tasks_of(options), options.get("together", True))


def saved_units(section, ts, results_dir) -> int:
    """How many ensembles of an unfinished run are saved (for the interrupt message)."""
    return len(load_partial(section, ts, results_dir)[1])


