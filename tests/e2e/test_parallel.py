"""The same tasks give identical numbers in-process, on 2 worker processes and on a Dask cluster (issue 6)."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from utils.pipeline.sweep import build_tasks, collect, run_sweep

ROOT = Path(__file__).resolve().parents[2]


def frames(results):
    return {f: df.drop(columns="wall_time") for f, df in collect(results)[0].items()}


@pytest.fixture(scope="module")
def tasks():
    return build_tasks("section1_1", [(0, "sin_freq1"), (5, "piecewise")], ["mlp", "kan", "kan_pruning"],
                       seeds=5, epochs=4, device="cpu", quick=True)


@pytest.fixture(scope="module")
def serial(tasks):
    return frames(run_sweep(tasks, workers=1, progress=False))


def test_two_worker_processes_match_one(tasks, serial):
    parallel = frames(run_sweep(tasks, workers=2, progress=False))
    for family in serial:
        pd.testing.assert_frame_equal(serial[family], parallel[family], check_exact=True)


def test_dask_cluster_matches_one_process(tasks, serial):
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = frames(run_sweep(tasks, scheduler=cluster.scheduler_address, progress=False))
    for family in serial:
        pd.testing.assert_frame_equal(serial[family], on_dask[family], check_exact=True)


def test_unreachable_scheduler_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "section1_1.py"), "--quick", "--no-progress",
                           "--scheduler", "tcp://127.0.0.1:9", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cannot reach the Dask scheduler" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_families_on_two_devices_train_at_the_same_time(tasks, serial, monkeypatch):
    """--device auto's split: the GPU's ensembles in a process of their own beside the CPU workers
    (on a CPU machine, the KAN ensembles stand in for the GPU's), the same numbers as one process."""
    from utils.pipeline import sweep
    pools, pool = [], sweep._pool

    def counted(workers):
        pools.append(workers)
        return pool(workers)
    monkeypatch.setattr(sweep, "gpu_process", lambda ens: ens.family.startswith("kan"))
    monkeypatch.setattr(sweep, "_pool", counted)
    split = frames(run_sweep(tasks, workers=2, progress=False))
    assert sorted(pools) == [1, 2]  # the CPU workers, and the GPU's process
    for family in serial:
        pd.testing.assert_frame_equal(serial[family], split[family], check_exact=True)
    pools.clear()  # one CPU worker: the CPU's ensembles in this process, beside the GPU's
    one = frames(run_sweep(tasks, workers=1, progress=False))
    assert pools == [1]
    for family in serial:
        pd.testing.assert_frame_equal(serial[family], one[family], check_exact=True)
