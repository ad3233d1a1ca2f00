"""Running the project's scripts as a user does: in a subprocess, from the repository."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the section runs the end-to-end tests share (tests/e2e/conftest.py): section 1.1 with three seeds
# (figures with bands, tables with spreads), 1.2 and 1.3 with one (figures drawn as one seed draws
# them); 1.3 with 3 epochs to stay fast. One worker: the tests already keep both cores busy, and a
# worker process costs seconds of imports
SHARED = {"section1_1": ["--quick", "--seeds", "0", "1", "2", "--workers", "1"],
          "section1_2": ["--quick", "--workers", "1"],
          "section1_3": ["--quick", "--epochs", "3", "--workers", "1"]}


def section(script: str, *args, cwd=None, timeout=900):
    """``python <script>.py ARGS`` (a section script, e.g. "section1_1"), its output captured."""
    return subprocess.run([sys.executable, str(ROOT / f"{script}.py"), *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout)


def python(*args, cwd=None, timeout=900):
    """``python ARGS`` (``-m visualization ...``), from the repository, its output captured."""
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)
