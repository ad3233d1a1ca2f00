"""The sweep: a list of independent tasks (dataset x family x configuration x seed) and their runner.

A task is plain data and seeds everything it uses itself, and torch runs on one thread in every
process, so a task gives the same numbers in the main process, in any worker process and on any
Dask worker: results do not depend on how many workers run the sweep or in which order.
"""
from __future__ import annotations

import contextlib
import os
import random
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
import multiprocessing

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

FAMILIES = ("mlp", "siren", "kan", "kan_pruning")
MLP_DEPTHS, MLP_ACTIVATIONS, SIREN_DEPTHS = (2, 3, 4, 5, 6), ("tanh", "relu", "silu"), (2, 3, 4, 5, 6)
QUICK_DEPTHS, QUICK_GRIDS = (2, 3), (3, 5, 10)
WIDTH = 5


@dataclass(frozen=True)
class Task:
    section: str
    family: str
    dataset_idx: int
    dataset_name: str
    seed: int
    epochs: int
    device: str
    config: tuple = ()          # (("depth", 3), ("activation", "tanh"))
    grids: tuple = ()           # KAN grid schedule
    options: tuple = ()         # problem options, e.g. (("mode", "pinn"), ("alpha", 0.01))


def model_key(family: str, config) -> str:
    """Where a trained model is stored: models[family][dataset_name][key].

    ``config`` is a mapping with the family's configuration columns (a DataFrame row will do):
    depth and activation; for KANs grid_size, and stage for the pruned KAN. One function for the
    sweep that saves models and the figures that look them up.
    """
    if family == "mlp":
        return f"depth{config['depth']}_activation{config['activation']}"
    if family == "siren":
        return f"depth{config['depth']}"
    stage = "kan" if family == "kan" else config["stage"]
    return f"{stage}_grid{config['grid_size']}"


def family_configs(family: str, quick: bool) -> list[tuple]:
    depths = QUICK_DEPTHS if quick else MLP_DEPTHS
    if family == "mlp":
        return [(("depth", d), ("activation", a)) for d in depths for a in MLP_ACTIVATIONS]
    if family == "siren":
        return [(("depth", d),) for d in (QUICK_DEPTHS if quick else SIREN_DEPTHS)]
    return [()]


def build_tasks(section, datasets, families, seed, epochs, device, quick=False, options=()):
    """``datasets``: (dataset_idx, name) pairs. Tasks come in a fixed order: dataset, family, config."""
    from utils.training import KAN_GRIDS
    grids = QUICK_GRIDS if quick else KAN_GRIDS
    return [Task(section, fam, idx, name, seed, epochs, device, cfg,
                 grids if fam.startswith("kan") else (), tuple(options))
            for idx, name in datasets for fam in families for cfg in family_configs(fam, quick)]


def make_problem(task: Task):
    if task.section == "section1_1":
        from utils.datasets import FUNCTIONS_1D, RegressionProblem
        return RegressionProblem(task.dataset_name, FUNCTIONS_1D[task.dataset_name], task.seed,
                                 task.dataset_idx, task.device)
    from utils.pde import PoissonProblem
    return PoissonProblem(task.dataset_name, task.seed, task.dataset_idx, task.device, **dict(task.options))


def run_task(task: Task) -> dict:
    """Train one configuration; return its rows and trained model specs (plain, picklable data)."""
    from utils.models import MLP, SIREN, model_spec
    from utils.training import Recorder, train_kan, train_kan_pruned, train_net
    if task.device == "cpu":
        torch.set_num_threads(1)
    torch.manual_seed(task.seed)
    np.random.seed(task.seed % 2**32)
    random.seed(task.seed)
    problem = make_problem(task)
    mode = dict(task.options).get("mode")
    base = {"dataset_idx": task.dataset_idx, "dataset_name": task.dataset_name, "seed": task.seed,
            **({"mode": mode} if mode else {}), **dict(task.config)}
    rec = Recorder(problem, base)
    snapshots = {}
    if task.family in ("mlp", "siren"):
        cfg = dict(task.config)
        model = (MLP(problem.n_in, WIDTH, cfg["depth"], cfg["activation"]) if task.family == "mlp"
                 else SIREN(problem.n_in, WIDTH, cfg["depth"])).to(task.device)
        train_net(model, problem, task.epochs, rec)
        snapshots[model_key(task.family, cfg)] = model_spec(model)
    else:
        train = train_kan if task.family == "kan" else train_kan_pruned
        snap = lambda model, stage: snapshots.__setitem__(
            model_key(task.family, {"stage": stage, "grid_size": model.grid}), model_spec(model))
        train(problem, task.epochs, rec, seed=task.seed, device=task.device, grids=task.grids, snapshot=snap)
    return {"family": task.family, "dataset_name": task.dataset_name, "rows": rec.rows,
            "models": {k: {"__model__": v} for k, v in snapshots.items()}}


def _cost(task: Task) -> float:
    """Rough relative cost, to start the longest tasks first."""
    return {"kan_pruning": 12.0, "kan": 10.0}.get(task.family, dict(task.config).get("depth", 2))


def _init_worker():
    torch.set_num_threads(1)


@contextlib.contextmanager
def _executor(workers: int, scheduler: str | None):
    if scheduler:
        from distributed import Client
        with Client(scheduler, timeout="10s") as client:
            yield client.get_executor()
    elif workers > 1:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe with torch's thread pools and CUDA
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as ex:
            yield ex
    else:
        yield None


def run_sweep(tasks, workers: int = 1, scheduler: str | None = None, progress: bool = True):
    """Results of ``run_task`` for every task, in task order, however they were run."""
    results = [None] * len(tasks)
    order = sorted(range(len(tasks)), key=lambda i: -_cost(tasks[i]))
    bar = tqdm(total=len(tasks), desc="sweep", unit="task", disable=not progress, dynamic_ncols=True)
    with bar, _executor(workers, scheduler) as ex:
        if ex is None:
            for i in order:
                results[i] = run_task(tasks[i])
                bar.update()
        else:
            futures = {ex.submit(run_task, tasks[i]): i for i in order}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    return results


def collect(results) -> tuple[dict, dict]:
    """Per-family DataFrames (rows in task order) and models[family][dataset][label]."""
    frames, models = {}, {}
    for r in results:
        frames.setdefault(r["family"], []).extend(r["rows"])
        models.setdefault(r["family"], {}).setdefault(r["dataset_name"], {}).update(r["models"])
    return {f: pd.DataFrame(rows) for f, rows in frames.items()}, models


def default_workers(device: str) -> int:
    return 1 if device == "cuda" else (os.cpu_count() or 1)
