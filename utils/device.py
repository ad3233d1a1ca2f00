"""The one place that decides which device a run trains on; everything else reads the decision.

``resolve`` turns what a user asked for (``auto``, ``cpu``, ``cuda``) into a device, or refuses in
one line (``cuda`` on a machine without CUDA); the command line and ``utils.api`` both call it, and
the decision travels with the run's options, its tasks and its DataFrames' attrs.
"""
from __future__ import annotations

import os

CHOICES = ("auto", "cpu", "cuda")
ENGINES = ("auto", "host", "resident")


class DeviceError(ValueError):
    """A device that cannot be used here; the message is one line."""


def resolve(name: str) -> str:
    """'cpu' or 'cuda' for ``name``; auto: CUDA when this machine has it."""
    if name not in CHOICES:
        raise DeviceError(f"device must be one of {', '.join(CHOICES)}, got {name!r}")
    if name == "cpu":
        return "cpu"
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise DeviceError("--device cuda: CUDA is not available on this machine (use --device cpu)")
    return "cuda"


def engine_for(engine: str, device: str) -> str:
    """The optimizer engine a device runs: ``auto`` takes the device-resident one on a GPU (no host
    round trips per tick, replayable as CUDA graphs) and the host-driven one on the CPU, where its
    compiled directions and per-member evaluations are faster."""
    if engine not in ENGINES:
        raise DeviceError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    return "resident" if device == "cuda" else "host"


def default_workers(device: str) -> int:
    """Worker processes of a sweep: one per core on the CPU (one torch thread each), one on a GPU."""
    return 1 if device == "cuda" else (os.cpu_count() or 1)


def synchronize(device) -> None:
    """Wait for the device's queued work (a GPU's), so that a timer measures it."""
    import torch
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
