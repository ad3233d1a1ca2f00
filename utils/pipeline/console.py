"""What a run prints: to a stdout that may be a pipe whose reader has gone (``section1_1.py | head -1``).

Once the reader is gone, what a run prints goes nowhere instead of ending it with a BrokenPipeError:
the run still finishes and saves, and the interpreter's last flush at exit has nothing to complain of.
"""
from __future__ import annotations

import os
import sys


def say(*values, **kw) -> None:
    """print(), flushed; after a BrokenPipeError stdout is os.devnull (as Python's docs on SIGPIPE advise)."""
    try:
        print(*values, **kw, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # a stdout without a file descriptor
            sys.stdout = open(os.devnull, "w")
        finally:
            os.close(devnull)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
