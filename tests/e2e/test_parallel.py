"""The same tasks give identical numbers in-process, on 2 worker processes and on a Dask cluster started
as the README starts one (issues 6 and 22)."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from utils import load_run
from utils.pipeline import cli
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


def readme_recipe() -> str:
    """The README's one-machine Dask recipe, the block after its marker, as a user copies it."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index("<!-- the one-machine Dask recipe"):]
    return after.split("```bash\n", 1)[1].split("```", 1)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(pgid):
    """End a process group (the recipe's background scheduler and worker): SIGTERM, then SIGKILL."""
    def in_group(p):
        try:
            return os.getpgid(p.pid) == pgid
        except (ProcessLookupError, PermissionError):
            return False
    group = [p for p in psutil.process_iter() if in_group(p)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    _, alive = psutil.wait_procs(group, timeout=15)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def test_the_readmes_dask_recipe_runs_as_written_and_matches_a_local_run(tmp_path, shared_run):
    """The recipe in bash from the repository root (on a free port, one worker; the venv's dask and
    python on PATH, no PYTHONPATH but the recipe's): its run equals the shared local run's rows of
    that dataset and seed (a member's numbers do not depend on the rest of the sweep)."""
    script = readme_recipe().replace("8786", str(free_port())).replace("--nworkers 8", "--nworkers 1")
    assert "export PYTHONPATH=$PWD" in script
    args = ["--quick", "--datasets", "sin_freq1", "--models", "mlp", "--no-progress", "--results-dir",
            str(tmp_path / "r")]
    script = "\n".join(line + " " + " ".join(args) if line.startswith("python section1_1.py") else line
                       for line in script.splitlines())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log = tmp_path / "log.txt"
    with open(log, "w") as out:  # the scheduler and the worker outlive bash: not a pipe the test waits on
        proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=300)
        finally:
            stop_group(proc.pid)
    assert code == 0, log.read_text()[-3000:]
    on_dask, meta = load_run("section1_1", results_dir=tmp_path / "r")
    assert meta["device"] == "cpu" and "Dask scheduler tcp://127.0.0.1:" in log.read_text()
    local = load_run("section1_1", results_dir=shared_run("section1_1")[0])[0]
    whole = local["mlp"][(local["mlp"]["dataset_name"] == "sin_freq1") & (local["mlp"]["seed"] == 0)]
    pd.testing.assert_frame_equal(on_dask["mlp"].drop(columns="wall_time").reset_index(drop=True),
                                  whole.drop(columns="wall_time").reset_index(drop=True), check_exact=True)


def test_a_scheduler_without_workers_is_reported_within_seconds(tmp_path, monkeypatch, capsys):
    from distributed import LocalCluster
    monkeypatch.setattr(cli, "WORKERS_WAIT_S", 1)
    # a regression would wait for ever: a Ctrl-C after a minute ends it (exit 130, not the 2 expected)
    watchdog = threading.Timer(60, lambda: os.kill(os.getpid(), signal.SIGINT))
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        t0 = time.time()
        watchdog.start()
        try:
            with pytest.raises(SystemExit) as e:
                cli.main("section1_1", ["--quick", "--no-progress", "--scheduler", cluster.scheduler_address,
                                        "--results-dir", str(tmp_path / "r")])
        finally:
            watchdog.cancel()
    err = capsys.readouterr().err
    assert e.value.code == 2 and time.time() - t0 < 10
    assert err.count("\n") == 1 and "the Dask scheduler has no workers (none joined within 1 s" in err
    assert not (tmp_path / "r").exists()


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "CONNECT_S", 1)
    with pytest.raises(SystemExit) as e:
        cli.main("section1_1", ["--quick", "--no-progress", "--scheduler", "tcp://127.0.0.1:9", "--results-dir",
                                str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "cannot reach the Dask scheduler" in err and err.count("\n") == 1
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
