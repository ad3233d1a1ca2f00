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

from utils.config import (FAMILIES, KAN_GRIDS, KAN_WIDTH, MLP_ACTIVATIONS, MLP_DEPTHS, PRUNE_EDGE_TH, PRUNE_LAMB,
                          PRUNE_NODE_TH, QUICK_DEPTHS, QUICK_GRIDS, SIREN_DEPTHS, WIDTH)

# what the command line may change, with the protocol's defaults; each lands in a column of its family
SETTINGS = {"width": WIDTH, "kan_width": KAN_WIDTH, "prune_lamb": PRUNE_LAMB, "prune_node_th": PRUNE_NODE_TH,
            "prune_edge_th": PRUNE_EDGE_TH}


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


def model_key(family: str, config) -> str:
    """Where a trained model is stored: models[family][dataset_name][key].

    ``config`` is a mapping with the family's configuration columns and ``seed`` (a DataFrame row
    will do): depth and activation; for KANs grid_size, and stage for the pruned KAN. One function
    for the sweep that saves models and the figures that look them up. Runs saved before several
    seeds existed have keys without the ``_seed`` part (``legacy_model_key``).
    """
    return f"{legacy_model_key(family, config)}_seed{config['seed']}"


def legacy_model_key(family: str, config) -> str:
    if family == "mlp":
        return f"depth{config['depth']}_activation{config['activation']}"
    if family == "siren":
        return f"depth{config['depth']}"
    stage = "kan" if family == "kan" else config["stage"]
    return f"{stage}_grid{config['grid_size']}"


def family_configs(family: str, quick: bool, settings=None) -> list[tuple]:
    """The configurations a sweep trains of ``family``, each as its (column, value) pairs."""
    s = {**SETTINGS, **(settings or {})}
    if family == "mlp":
        return [(("width", s["width"]), ("depth", d), ("activation", a))
                for d in (QUICK_DEPTHS if quick else MLP_DEPTHS) for a in MLP_ACTIVATIONS]
    if family == "siren":
        return [(("width", s["width"]), ("depth", d)) for d in (QUICK_DEPTHS if quick else SIREN_DEPTHS)]
    if family == "kan":
        return [(("width", s["kan_width"]),)]
    return [(("width", s["kan_width"]), ("prune_lamb", s["prune_lamb"]), ("prune_node_th", s["prune_node_th"]),
             ("prune_edge_th", s["prune_edge_th"]))]


def build_tasks(section, datasets, families, seeds, epochs, device, quick=False, options=(), settings=None):
    """``datasets``: (dataset_idx, name) pairs; ``seeds``: a seed or a list of them.

    Tasks come in a fixed order: dataset, family, configuration, seed.
    """
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    grids = QUICK_GRIDS if quick else KAN_GRIDS
    return [Task(section, fam, idx, name, seed, epochs, device, cfg,
                 grids if fam.startswith("kan") else (), tuple(options))
            for idx, name in datasets for fam in families for cfg in family_configs(fam, quick, settings)
            for seed in seeds]


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
    cfg = dict(task.config)
    if task.family in ("mlp", "siren"):
        model = (MLP(problem.n_in, cfg["width"], cfg["depth"], cfg["activation"]) if task.family == "mlp"
                 else SIREN(problem.n_in, cfg["width"], cfg["depth"])).to(task.device)
        train_net(model, problem, task.epochs, rec)
        snapshots[model_key(task.family, {**cfg, "seed": task.seed})] = model_spec(model)
    else:
        snap = lambda model, stage: snapshots.__setitem__(
            model_key(task.family, {"stage": stage, "grid_size": model.grid, "seed": task.seed}), model_spec(model))
        kw = dict(seed=task.seed, device=task.device, grids=task.grids, snapshot=snap, width=cfg["width"])
        if task.family == "kan":
            train_kan(problem, task.epochs, rec, **kw)
        else:
            train_kan_pruned(problem, task.epochs, rec, lamb=cfg["prune_lamb"], node_th=cfg["prune_node_th"],
                             edge_th=cfg["prune_edge_th"], **kw)
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
