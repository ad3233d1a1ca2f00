"""Never lose finished work: Ctrl-C, SIGKILL, a full disk, resume, and input checks (issue 14).

The sweeps here are real section runs in subprocesses; an interrupt is sent as soon as the run has
saved its first ensemble, so the test does not depend on how fast this machine is.
"""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from utils import io as run_io
from utils import list_unfinished, load_run

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--quick", "--epochs", "3", "--datasets", "sin_freq1", "piecewise", "--models", "mlp", "kan",
         "--no-progress"]


def start(results, *extra, workers=2):
    """A section 1.1 run in its own process group, as a terminal would start it."""
    cmd = [sys.executable, str(ROOT / "section1_1.py"), *SMALL, "--workers", str(workers), "--results-dir",
           str(results), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_first_unit(results, proc, timeout=300):
    """Block until the run has saved one finished ensemble; return its partial folder."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        parts = list(results.glob("*.partial"))
        if parts and any(p.suffix == ".pkl" for p in parts[0].iterdir()):
            return parts[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no ensemble finished in time")


def resume(results, ts):
    return subprocess.run([sys.executable, str(ROOT / "section1_1.py"), "--resume", ts, "--results-dir", str(results),
                           "--no-progress"], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    results = tmp_path_factory.mktemp("whole")
    proc = start(results)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return load_run("section1_1", results_dir=results)[0]


def assert_same_run(a, b):
    assert set(a) == set(b)
    for family in a:
        pd.testing.assert_frame_equal(a[family].drop(columns="wall_time"), b[family].drop(columns="wall_time"),
                                      check_exact=True)


def test_ctrl_c_keeps_finished_work_and_resume_completes_it(tmp_path, uninterrupted):
    proc = start(tmp_path)
    partial = wait_for_first_unit(tmp_path, proc)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.time() - t0 < 10
    ts = partial.name[len("section1_1_"):-len(".partial")]
    assert f"--resume {ts}" in out.splitlines()[0]  # the first line says how to resume
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "ensembles are saved" in err
    assert list_unfinished("section1_1", tmp_path) == [ts]
    with pytest.raises(run_io.RunError, match="unfinished"):
        load_run("section1_1", ts, results_dir=tmp_path)
    done = resume(tmp_path, ts)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already done" in done.stdout.splitlines()[0]
    assert_same_run(load_run("section1_1", ts, results_dir=tmp_path)[0], uninterrupted)
    assert list_unfinished("section1_1", tmp_path) == []


def test_second_ctrl_c_never_hangs(tmp_path):
    proc = start(tmp_path)
    wait_for_first_unit(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130


def test_killed_parent_takes_its_workers_along_and_resume_completes(tmp_path, uninterrupted):
    proc = start(tmp_path)
    partial = wait_for_first_unit(tmp_path, proc)
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)]
    assert workers
    os.kill(proc.pid, signal.SIGKILL)  # the OOM killer, a scheduler's wall-time limit
    proc.communicate()
    deadline = time.time() + 10
    alive = lambda: [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]  # noqa: E731
    while alive() and time.time() < deadline:
        time.sleep(0.2)
    assert not alive()
    ts = partial.name[len("section1_1_"):-len(".partial")]
    done = resume(tmp_path, ts)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(load_run("section1_1", ts, results_dir=tmp_path)[0], uninterrupted)


def test_full_disk_is_one_line_and_keeps_the_finished_work(tmp_path, monkeypatch, capsys):
    """The disk fills after the first ensemble was saved: one line naming the file and the cause, a
    non-zero exit, and that ensemble still on disk for --resume."""
    from utils.pipeline import cli, run
    real = run_io.save_partial
    calls = []

    def filling(section, ts, key, payload, results_dir=None):
        calls.append(key)
        if len(calls) > 1:
            path = Path(results_dir) / f"{section}_{ts}.partial" / f"{key}.pkl"
            raise run_io._write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return real(section, ts, key, payload, results_dir)

    monkeypatch.setattr(run, "save_partial", filling)
    with pytest.raises(SystemExit) as e:
        cli.main("section1_1", [*SMALL, "--models", "mlp", "siren", "--workers", "1", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 1 and len(err.strip().splitlines()) == 1
    assert "No space left on device" in err and calls[1] in err and "--resume" in err
    (ts,) = list_unfinished("section1_1", tmp_path)
    assert list(run_io.load_partial("section1_1", ts, tmp_path)[1]) == calls[:1]


@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "must lie in [0, 2**32)"),
    (["--seed", "4294967296"], "must lie in [0, 2**32)"),
    (["--seeds", "1", "-2"], "must lie in [0, 2**32)"),
    (["--scheduler", "foo"], "expected an address"),
    (["--results-dir", ""], "must name a folder"),
    (["--resume", "20990101_000000"], "no unfinished run"),
    (["--datasets", "nope"], "unknown nope"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, args, message):
    results = tmp_path / "new" / "nested"
    if "--results-dir" not in args:
        args = [*args, "--results-dir", str(results)]
    proc = subprocess.run([sys.executable, str(ROOT / "section1_1.py"), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no folders left behind, none written into the working directory


def test_results_dir_under_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    proc = subprocess.run([sys.executable, str(ROOT / "section1_1.py"), "--results-dir", str(tmp_path / "f" / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is a file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_workers_are_capped_at_the_ensembles(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "section1_1.py"), *SMALL, "--models", "kan", "--workers",
                           "1000", "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "only 1 ensembles to train, using 1 worker(s)" in proc.stderr
    assert "1 worker(s)" in proc.stdout.splitlines()[0]
