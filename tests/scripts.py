"""Running the project's scripts as a user does: in a subprocess, from the repository."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def section(script: str, *args, cwd=None, timeout=900):
    """``python <script>.py ARGS`` (a section script, e.g. "section1_1"), its output captured."""
    return subprocess.run([sys.executable, str(ROOT / f"{script}.py"), *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout)


def python(*args, cwd=None, timeout=900):
    """``python ARGS`` (``-m visualization ...``), from the repository, its output captured."""
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)
