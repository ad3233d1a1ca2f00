"""Never lose finished work: Ctrl-C, SIGTERM, SIGKILL, a full disk, resume, and input checks (issues 14, 22).

The sweeps here are real section runs in subprocesses. A signal is sent once the run has saved its
first ensemble, with its worker processes stopped (SIGSTOP) until the signal is sent: the run is
still running when it arrives, however fast this machine is.
"""
import contextlib
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
from utils import list_runs, list_unfinished, load_run

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--quick", "--epochs", "3", "--datasets", "sin_freq1", "piecewise", "--models", "mlp", "kan",
         "--no-progress"]  # 7 ensembles
TINY = ["--quick", "--epochs", "1", "--datasets", "sin_freq1", "--models", "mlp", "--workers", "1", "--no-progress"]


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


def frozen(proc, partial):
    """Stop the run's worker processes (SIGSTOP): the run cannot finish before the test's signal."""
    workers = psutil.Process(proc.pid).children(recursive=True)
    for w in workers:
        w.suspend()
    assert proc.poll() is None and len(list(partial.glob("*.pkl"))) < 7, "the run ended before it was signalled"
    return workers


def thaw(workers):
    for w in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            w.resume()


def all_gone(processes, timeout=10) -> bool:
    alive = lambda: [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]  # noqa: E731
    deadline = time.time() + timeout
    while alive() and time.time() < deadline:
        time.sleep(0.2)
    return not alive()


def timestamp_of(partial):
    return partial.name[len("section1_1_"):-len(".partial")]


def resume(results, ts):
    """Resume in this process's one worker (the same numbers as any number of workers; fewer imports)."""
    return subprocess.run([sys.executable, str(ROOT / "section1_1.py"), "--resume", ts, "--results-dir", str(results),
                           "--no-progress", "--workers", "1"], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(made_once, shared_root):
    """The run the interrupted ones must equal once resumed: made once for every test process."""
    results = shared_root / "uninterrupted"

    def make():
        proc = start(results, workers=1)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        return str(results)
    made_once("uninterrupted", make)
    return load_run("section1_1", results_dir=results)[0]


@pytest.fixture
def signals_back():
    """After an interrupt cli.main leaves SIGINT and SIGTERM ignored (its process is exiting); not this one."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in previous.items():
        signal.signal(s, h)


def assert_same_run(a, b):
    assert set(a) == set(b)
    for family in a:
        pd.testing.assert_frame_equal(a[family].drop(columns="wall_time"), b[family].drop(columns="wall_time"),
                                      check_exact=True)


def test_ctrl_c_keeps_finished_work_and_resume_completes_it(tmp_path, uninterrupted):
    proc = start(tmp_path)
    partial = wait_for_first_unit(tmp_path, proc)
    workers = frozen(proc, partial)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    thaw(workers)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.time() - t0 < 10
    ts = timestamp_of(partial)
    assert f"--resume {ts}" in out.splitlines()[0]  # the first line says how to resume
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "ensembles are saved" in err
    assert all_gone(workers)
    assert list_unfinished("section1_1", tmp_path) == [ts]
    with pytest.raises(run_io.RunError, match="unfinished"):
        load_run("section1_1", ts, results_dir=tmp_path)
    done = resume(tmp_path, ts)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already done" in done.stdout.splitlines()[0]
    assert_same_run(load_run("section1_1", ts, results_dir=tmp_path)[0], uninterrupted)
    assert list_unfinished("section1_1", tmp_path) == []


def test_killed_parent_takes_its_workers_along_and_resume_completes(tmp_path, uninterrupted):
    proc = start(tmp_path)
    partial = wait_for_first_unit(tmp_path, proc)
    workers = frozen(proc, partial)
    os.kill(proc.pid, signal.SIGKILL)  # the OOM killer, a scheduler's wall-time limit
    thaw(workers)
    _, err = proc.communicate()  # once the workers and the resource tracker, which share stderr, are gone
    assert all_gone(workers)
    assert "leaked semaphore" not in err and "Traceback" not in err, err
    ts = timestamp_of(partial)
    done = resume(tmp_path, ts)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(load_run("section1_1", ts, results_dir=tmp_path)[0], uninterrupted)


def test_ctrl_c_while_starting_is_one_line_and_writes_nothing(tmp_path):
    """A Ctrl-C while the script imports torch and the rest (seconds) prints no traceback."""
    proc = start(tmp_path / "r")
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    if "before the run started" in err:
        assert not (tmp_path / "r").exists()


def test_ctrl_c_while_the_workers_start_is_one_line_and_a_second_signal_never_hangs(tmp_path):
    """The workers import torch for seconds after the run's first line: they ignore the Ctrl-C (the
    parent stops them), so the only line is the parent's; a second signal while it stops (here a
    batch system's SIGTERM) changes nothing."""
    proc = start(tmp_path)
    proc.stdout.readline()
    time.sleep(0.3)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    (ts,) = list_unfinished("section1_1", tmp_path)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"section1_1.py: error: interrupted: 0 of 7 ensembles are saved; resume with: "
                                        f"python section1_1.py --resume {ts}"]
    assert all_gone(workers)


def test_sigterm_is_one_line_with_the_resume_command_exit_143(tmp_path, monkeypatch, capsys, signals_back):
    """A batch system's first signal stops the run as Ctrl-C does (here once its first ensemble is
    saved), with its own exit status."""
    from utils.pipeline import cli, sweep
    real, calls = sweep.run_ensemble, []

    def terminated(ens, section=None):
        calls.append(ens)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(ens, section)
    monkeypatch.setattr(sweep, "run_ensemble", terminated)
    with pytest.raises(SystemExit) as e:
        cli.main("section1_1", [*TINY, "--results-dir", str(tmp_path)])
    (ts,) = list_unfinished("section1_1", tmp_path)
    assert e.value.code == 143 and capsys.readouterr().err == (
        f"section1_1.py: error: terminated: 1 of 6 ensembles are saved; resume with: python section1_1.py --resume "
        f"{ts}\n")


def test_a_failing_ensemble_is_one_line_and_keeps_the_finished_work(tmp_path, monkeypatch, capsys):
    """Any exception of an ensemble (here the allocation error a 10^12-weight layer gives) ends the
    run in one line naming the ensemble and the error, with the resume command."""
    from utils.pipeline import cli, sweep
    real, calls = sweep.run_ensemble, []

    def failing(ens, section=None):
        calls.append(ens)
        if len(calls) == 2:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory\n"
                               "  (a second line)")
        return real(ens, section)
    monkeypatch.setattr(sweep, "run_ensemble", failing)
    with pytest.raises(SystemExit) as e:
        cli.main("section1_1", [*TINY, "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    (ts,) = list_unfinished("section1_1", tmp_path)
    assert e.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err
    config = " ".join(f"{k}={v}" for k, v in calls[1].config)
    assert (f"error: the mlp ensemble {config} (1 model) failed: RuntimeError: [enforce fail at alloc_cpu.cpp:117] "
            f"data. DefaultCPUAllocator: not enough memory; the finished ensembles are kept, resume with: python "
            f"section1_1.py --resume {ts} once that is fixed") in err
    assert len(run_io.load_partial("section1_1", ts, tmp_path)[1]) == 1


def test_ctrl_c_during_the_final_save_waits_for_it(tmp_path, monkeypatch, capsys, signals_back):
    """A Ctrl-C while the models file is written (torch.save turns an interrupt inside its writer into
    a RuntimeError) takes effect once the run is written: it is complete, and the line says so."""
    import torch
    from utils.pipeline import cli

    class Interrupted:
        """The file torch.save writes to; Ctrl-C arrives on its second write."""
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, data):
            self.writes += 1
            if self.writes == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)
    real = torch.save

    def save(obj, f, *a, **k):  # the models file only (pickling a tensor calls torch.save too)
        return real(obj, Interrupted(f) if isinstance(obj, dict) and run_io.RUN_KEY in obj else f, *a, **k)
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(SystemExit) as e:
        cli.main("section1_1", [*TINY, "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    (ts,) = list_runs("section1_1", tmp_path)
    assert e.value.code == 130
    assert err == f"section1_1.py: error: interrupted after run section1_1 {ts} was completely written: it is " \
                  f"complete, nothing to resume\n"
    assert list_unfinished("section1_1", tmp_path) == [] and not list(tmp_path.glob("*.partial"))
    assert len(load_run("section1_1", ts, results_dir=tmp_path, load_models=True)[2]["mlp"]["sin_freq1"]) == 6


def test_two_resumes_of_one_run_never_train_it_twice(tmp_path, capsys):
    """The run is held by the process that trains it (here one that started it and waits); a resume
    meanwhile says so and trains nothing; once that process is gone, even killed, the run is free."""
    from utils.pipeline import cli
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from utils.pipeline import cli; from utils.io import start_run; "
         "section = cli.SECTIONS['section1_1']; args = cli.build_parser(section).parse_args(sys.argv[1:]); "
         "print(start_run('section1_1', args.results_dir, cli.plan('section1_1.py', section, args)), flush=True); "
         "time.sleep(120)", *TINY, "--device", "cpu", "--results-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        ts = holder.stdout.readline().strip()
        with pytest.raises(SystemExit) as e:
            cli.main("section1_1", ["--resume", ts, "--results-dir", str(tmp_path), "--no-progress"])
        err = capsys.readouterr().err
        assert e.value.code == 1 and err == (f"section1_1.py: error: --resume {ts}: run section1_1 {ts} is being "
                                             f"trained by another process (pid {holder.pid} on {run_io._HOST}); "
                                             f"nothing was trained\n")
        assert list(run_io.load_partial("section1_1", ts, tmp_path)[1]) == []
    finally:
        holder.kill()
        holder.wait()
    run_io.hold_run("section1_1", ts, tmp_path)  # free once its holder was killed
    run_io._release(tmp_path / f"section1_1_{ts}.partial")


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


def test_workers_are_capped_at_the_ensembles_and_a_closed_pipe_does_not_stop_the_run(tmp_path):
    """``section1_1.py ... | head -1``: the reader goes after the first line; the run finishes and is saved."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "section1_1.py"), *SMALL, "--models", "kan", "--workers",
                             "1000", "--datasets", "sin_freq1", "--results-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
    assert err == "section1_1.py: note: --workers 1000: only 1 ensemble to train, using 1 worker(s)\n"
    assert "1 model (kan) in 1 ensemble; 1 dataset, 3 epochs, seed 0, float64, device cpu, 1 worker(s)" in first
    assert len(list_runs("section1_1", tmp_path)) == 1
