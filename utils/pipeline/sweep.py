"""The sweep: independent tasks (dataset x family x configuration x seed), trained as ensembles.

A task is plain data and seeds everything it uses itself. Tasks of one family and configuration
(same architecture, epochs, device and problem options) form one ensemble, trained as one program
(``utils.engine.training``); the grouping depends only on the task list, never on how many workers or
which scheduler run it, and worker processes and Dask workers receive whole ensembles. torch runs
on one thread in every process, so the same seed gives the same numbers in the main process, in
any worker process and on any Dask worker.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils import signals
from utils.config import DEFAULT_DTYPE, KAN_GRIDS, QUICK_GRIDS
from utils.device import engine_for
from utils.engine import training
from utils.families import FAMILIES, SETTINGS, model_key
from utils.pipeline.console import plural
from utils.pipeline.host_memory import keep_freed_memory
from utils.sections import SECTIONS


@dataclass(frozen=True)
class Task:
    section: str
    family: str
    dataset_idx: int
    dataset_name: str
    seed: int
    epochs: int
    device: str
    config: tuple = ()          # (("width", 5), ("depth", 3), ("activation", "tanh")): the family's columns
    grids: tuple = ()           # KAN grid schedule
    options: tuple = ()         # problem options, e.g. (("mode", "pinn"), ("alpha", 0.01))
    dtype: str = DEFAULT_DTYPE  # training precision of every family
    engine: str = "host"        # the optimizer's engine: host-driven, or device-resident (utils.device.engine_for)

    def architecture(self) -> tuple:
        """What members of one ensemble share: everything but the dataset and the seed."""
        return (self.section, self.family, self.epochs, self.device, self.config, self.grids, self.options,
                self.dtype, self.engine)


@dataclass(frozen=True)
class Ensemble:
    """Tasks that train as one program: same family, configuration, budget, device and options."""
    tasks: tuple

    def __getattr__(self, name):  # the fields its members share
        if name in ("section", "family", "epochs", "device", "config", "grids", "options", "dtype", "engine"):
            return getattr(self.tasks[0], name)
        raise AttributeError(name)

    def cost(self) -> float:
        """Rough relative cost, to start the longest ensembles first."""
        return FAMILIES[self.family].cost * len(self.tasks) * dict(self.config).get("depth", 1)


def build_tasks(section, datasets, families, seeds, epochs, device, quick=False, options=(), settings=None,
                dtype=DEFAULT_DTYPE, configs=None, grids=None, engine="auto"):
    """``datasets``: (dataset_idx, name) pairs; ``seeds``: a seed or a list of them; ``configs``: per
    family, the configurations to train instead of the family's sweep (``utils.api``: one model);
    ``grids``: the KAN grid schedule instead of the protocol's; ``engine``: the optimizer's
    (``utils.device.engine_for``: auto is the resident one on a GPU); ``device``: one for every
    family, or {family: device} (``utils.device.place``).

    Tasks come in a fixed order: dataset, family, configuration, seed.
    """
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    settings = {**SETTINGS, **(settings or {})}
    grids = tuple(grids or (QUICK_GRIDS if quick else KAN_GRIDS))
    on = device if isinstance(device, dict) else dict.fromkeys(families, device)
    return [Task(section, fam, idx, name, seed, epochs, on[fam], cfg,
                 grids if FAMILIES[fam].grid_schedule else (), tuple(options), dtype, engine_for(engine, on[fam]))
            for idx, name in datasets for fam in families
            for cfg in (configs or {}).get(fam, FAMILIES[fam].configs(quick, settings)) for seed in seeds]


def group(tasks, together: bool = True) -> list[Ensemble]:
    """Ensembles of tasks that share an architecture, in order of first appearance.

    ``together=False`` makes every task an ensemble of its own (the one-by-one path, for comparison).
    """
    if not together:
        return [Ensemble((t,)) for t in tasks]
    groups = {}
    for t in tasks:
        groups.setdefault(t.architecture(), []).append(t)
    return [Ensemble(tuple(g)) for g in groups.values()]


def run_ensemble(ens: Ensemble, section=None) -> list[dict]:
    """Train one ensemble; for each of its tasks its rows and trained model specs (plain, picklable data).

    ``section``: the Section its problems come from (default: the registry's entry of that name).
    """
    problems, base_rows = _prepare(ens, section)
    rows, snapshots = getattr(training, FAMILIES[ens.family].trainer)(ens, problems, base_rows, dict(ens.config))
    return _results(ens, rows, snapshots)


def run_program(ensembles, section=None) -> list[list[dict]]:
    """Train ensembles that form one program (``programs``): each one's ``run_ensemble`` results."""
    if len(ensembles) == 1:
        return [run_ensemble(ensembles[0], section)]
    prepared = [_prepare(e, section) for e in ensembles]
    out = training.train_merged_nets(ensembles, [p for p, _ in prepared], [r for _, r in prepared])
    return [_results(e, rows, snaps) for e, (rows, snaps) in zip(ensembles, out)]


def programs(ensembles, indices) -> list[list[int]]:
    """The listed ensembles as programs: those with one ``training.merge_key`` together (the GPU's
    MLPs and SIRENs), every other one on its own; in the order of their first member."""
    out, merged = [], {}
    for i in indices:
        key = training.merge_key(ensembles[i])
        if key is None:
            out.append([i])
        elif key in merged:
            merged[key].append(i)
        else:
            merged[key] = [i]
            out.append(merged[key])
    return out


def _prepare(ens, section):
    """An ensemble's problems and the columns its rows start with, in a process seeded by its first task."""
    section = section or SECTIONS[ens.section]
    if ens.device == "cpu":
        torch.set_num_threads(1)
        keep_freed_memory()
    seed = ens.tasks[0].seed
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)
    problems = [section.make_problem(t) for t in ens.tasks]
    mode = dict(ens.options).get("mode")
    shown = {k: str(list(v)) if isinstance(v, tuple) else v for k, v in dict(ens.config).items()}  # a KAN's width list
    base_rows = [{"dataset_idx": t.dataset_idx, "dataset_name": t.dataset_name, "seed": t.seed,
                  **({"mode": mode} if mode else {}), **shown} for t in ens.tasks]
    return problems, base_rows


def _results(ens, rows, snapshots):
    config = dict(ens.config)
    return [{"family": t.family, "dataset_name": t.dataset_name, "rows": r,
             "models": {model_key(t.family, {**config, **fields, "seed": t.seed}): {"__model__": spec}
                        for fields, spec in snaps}}
            for t, r, snaps in zip(ens.tasks, rows, snapshots)]


class EnsembleError(Exception):
    """An ensemble failed (its exception is the cause); the message is one line naming it."""


def _failed(program: list[Ensemble], e: Exception) -> EnsembleError:
    """The error of a program (one ensemble, or a GPU's merged ensembles: named by its first)."""
    ens = program[0]
    config = " ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in ens.config)
    others = f" (trained with {plural(len(program) - 1, 'other ensemble')})" if len(program) > 1 else ""
    lines = str(e).strip().splitlines()
    return EnsembleError(f"the {ens.family} ensemble {config} ({plural(len(ens.tasks), 'model')}){others} "
                         f"failed: {type(e).__name__}{f': {lines[0][:200]}' if lines else ''}")


def _init_worker(parent: int):
    """Worker processes: one torch thread; Ctrl-C and SIGTERM are the parent's to handle (it stops
    them; they started with both ignored, see ``_ignoring_signals``); and they end when the parent dies
    (a SIGKILL, the OOM killer, a wall-time limit), instead of running on orphaned. On Linux the kernel
    kills them at once, before they can print anything about the parent gone (a torch tensor half
    sent to it, say); elsewhere they notice within half a second."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform == "linux":
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG, for when the (main thread that) started it ends
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _stop(ex, futures):
    """Stop a sweep now: kill the worker processes (they ignore SIGTERM; the pool then fails what they
    were running and what waited) or, on Dask, cancel what has not finished."""
    if isinstance(ex, ProcessPoolExecutor):
        for proc in list(ex._processes.values()):
            proc.kill()
        ex.shutdown(wait=False)
    else:
        for fut in futures:
            fut.cancel()


@contextlib.contextmanager
def _ignoring_signals():
    """SIGINT and SIGTERM ignored while worker processes start: they keep that across exec (spawn), so a
    Ctrl-C while they import torch cannot print their tracebacks (the parent stops them). A signal in
    these few milliseconds of starting them is lost for the parent too."""
    previous = signals.route(signal.SIG_IGN)
    try:
        yield
    finally:
        signals.restore(previous)


# The pool's resource tracker, a process of its own started with this process's -W options, warns of
# "leaked semaphore objects" when the parent was killed, as it removes them: nothing is left behind.
QUIET_TRACKER = "ignore:resource_tracker:UserWarning"


@contextlib.contextmanager
def _pool(workers: int):
    if QUIET_TRACKER not in sys.warnoptions:
        sys.warnoptions.append(QUIET_TRACKER)
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with torch's thread pools and CUDA
    ex = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))
    try:
        yield ex
    finally:
        ex.shutdown(wait=True)


@contextlib.contextmanager
def _executor(workers: int, scheduler: str | None):
    if scheduler:
        from distributed import Client
        with Client(scheduler, timeout="10s") as client:
            yield client.get_executor()
    elif workers > 1:
        with _pool(workers) as ex:
            yield ex
    else:
        yield None


def gpu_process(ensemble) -> bool:
    """Whether an ensemble trains in the sweep's GPU process rather than on the CPU workers."""
    return ensemble.device == "cuda"


def run_sweep(tasks, workers: int = 1, scheduler: str | None = None, progress: bool = True, together=True,
              finished=None, on_result=None, section=None):
    """Results (rows and model specs) of every task, in task order, however they were run.

    The tasks train as ``group(tasks, together)``; ``finished`` maps the index of an ensemble of that
    list already trained (a resumed run) to its results; ``on_result(index, results)`` is called in
    this process as each ensemble finishes (checkpointing). An interrupt (SIGTERM too, as the command
    line raises it), a failing ``on_result`` or a failing ensemble (an EnsembleError naming it, its
    exception the cause) stops the workers at once and propagates; what finished before stays
    finished. ``section``: a
    Section that is not in the registry (``utils.api``'s own problem), for a sweep run in this process.

    Ensembles on different devices (``--device auto``'s split) train at the same time: those on the
    GPU one after another in a process of their own, the others on the ``workers`` CPU processes (or
    in this one).
    """
    ensembles = group(tasks, together)
    finished = dict(finished or {})
    position = {t: i for i, t in enumerate(tasks)}
    results = [None] * len(tasks)
    todo = programs(ensembles, [i for i in range(len(ensembles)) if i not in finished])
    todo.sort(key=lambda p: -sum(ensembles[i].cost() for i in p))
    bar = tqdm(total=len(tasks), desc="sweep", unit="model", disable=not progress, dynamic_ncols=True)

    def store(i, out, new=True):
        if new and on_result is not None:
            on_result(i, out)
        for t, r in zip(ensembles[i].tasks, out):
            results[position[t]] = r
        bar.update(len(ensembles[i].tasks))

    def store_program(p, outs):
        for i, out in zip(p, outs):
            store(i, out)

    def run(p):
        try:
            return run_program([ensembles[i] for i in p], section)
        except Exception as e:
            raise _failed([ensembles[i] for i in p], e) from e

    def finish(fut):
        p = futures[fut]
        try:
            outs = fut.result()
        except Exception as e:
            raise _failed([ensembles[i] for i in p], e) from e
        store_program(p, outs)

    with bar:
        for i, out in finished.items():
            store(i, out, new=False)
        on_gpu = [p for p in todo if gpu_process(ensembles[p[0]])]
        split = not scheduler and 0 < len(on_gpu) < len(todo)
        on_cpu = [p for p in todo if p not in on_gpu] if split else todo
        with _executor(min(workers, max(len(on_cpu), 1)), scheduler) as ex, \
                (_pool(1) if split else contextlib.nullcontext()) as gpu:
            if ex is None and not split:
                for p in on_cpu:
                    store_program(p, run(p))
                return results
            with _ignoring_signals() if ex is None or isinstance(ex, ProcessPoolExecutor) else contextlib.nullcontext():
                # submitting starts the worker processes
                futures = {gpu.submit(run_program, [ensembles[i] for i in p]): p for p in on_gpu} if split else {}
                if ex is not None:
                    futures.update({ex.submit(run_program, [ensembles[i] for i in p]): p for p in on_cpu})
            try:
                if ex is None:  # the CPU's ensembles here, while the GPU's train in their own process
                    for p in on_cpu:
                        store_program(p, run(p))
                for fut in as_completed(futures):
                    finish(fut)
            except BaseException as e:
                previous = signals.route(signal.SIG_IGN)  # a second signal must not break the cleanup,
                try:                                      # nor the caller's exit after an interrupt
                    for executor in (ex, gpu):
                        if executor is not None:
                            _stop(executor, futures)
                finally:
                    if not isinstance(e, KeyboardInterrupt):
                        signals.restore(previous)
                raise
    return results


def collect(results) -> tuple[dict, dict]:
    """Per-family DataFrames (rows in task order) and models[family][dataset][label]."""
    frames, models = {}, {}
    for r in results:
        frames.setdefault(r["family"], []).extend(r["rows"])
        models.setdefault(r["family"], {}).setdefault(r["dataset_name"], {}).update(r["models"])
    return {f: pd.DataFrame(rows) for f, rows in frames.items()}, models
