"""Section runs the end-to-end tests share, made once per test session.

A run is made by the section script itself, in a subprocess, as a user would start it. Test files
that read the same run get the same folder, also across pytest-xdist's worker processes (a file
lock: the first process to ask makes it, the others wait for it and read it).
"""
import json

import pytest
from filelock import FileLock
from scripts import SHARED, python, section


def once(root, name, make):
    """``make()`` -> a JSON-able result, made once under ``root`` for every test process and kept."""
    done = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            done.write_text(json.dumps(make()))
    return json.loads(done.read_text())


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory, worker_id):
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker_id != "master" else base  # one folder for every xdist worker


@pytest.fixture(scope="session")
def made_once(shared_root):
    """made_once(name, make) -> make()'s JSON-able result, made once for every test process of the session."""
    return lambda name, make: once(shared_root, name, make)


@pytest.fixture(scope="session")
def shared_run(shared_root):
    """shared_run(section) -> (results folder, the script's stdout) of that section's shared run; the
    folder above the results is the run's working directory."""
    def get(name):
        folder = shared_root / f"shared_{name}"

        def make():  # the run's own working folder: it must hold nothing but the results
            folder.mkdir(parents=True, exist_ok=True)
            proc = section(name, *SHARED[name], "--no-progress", "--results-dir", str(folder / "results"), cwd=folder)
            assert proc.returncode == 0, proc.stderr[-3000:]
            return proc.stdout
        stdout = once(shared_root, f"shared_{name}", make)
        return folder / "results", stdout
    return get


@pytest.fixture(scope="session")
def shared_figures(shared_run, shared_root):
    """shared_figures(section) -> (output folder, the command's return code, stdout, stderr) of
    ``python -m visualization`` on the section's shared run, drawn once."""
    def get(name):
        results, _ = shared_run(name)
        out = shared_root / f"figures_{name}"

        def make():
            proc = python("-m", "visualization", name, "--results-dir", str(results), "--out", str(out))
            return [proc.returncode, proc.stdout, proc.stderr]
        return (out, *once(shared_root, f"figures_{name}", make))
    return get
