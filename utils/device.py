"""The one place that decides which device a run trains on; everything else reads the decision.

``resolve`` turns what a user asked for (``auto``, ``cpu``, ``cuda``) into a device, or refuses in
one line (``cuda`` on a machine without CUDA); ``place`` decides, for a whole sweep, which families
train on the CPU workers and which on the GPU (``--device auto``: per family, by a cost model whose
constants are measured and kept in ``utils/config.py``); ``engine_for`` which optimizer engine a
device runs. The command line and ``utils.api`` call them, and the decision travels with the run's
options, its tasks and its DataFrames' attrs (each family's own device).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from utils import config

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


# ----------------------------------------------------------------------------- --device auto

NETS = ("mlp", "siren")   # the families the resident engine trains as one program on a GPU


@dataclass(frozen=True)
class Work:
    """One ensemble, as the cost model sees it."""
    family: str
    kind: str          # "regression" or "pinn"
    members: int
    epochs: int
    points: int        # training points per member (a PINN: interior and boundary)
    depth: int = 4     # a net's depth (KANs: unused)


def cpu_seconds(w: Work) -> float:
    """Estimated seconds of one ensemble in one CPU worker process (utils.config.CPU_SECONDS)."""
    fixed, per_1000 = config.CPU_SECONDS[(w.family, w.kind)]
    depth = w.depth / 4 if w.family in NETS else 1.0
    return w.members * w.epochs * (fixed + per_1000 * w.points / 1000) * depth


def gpu_seconds(works: list, engine: str) -> float:
    """Estimated seconds of these ensembles in the GPU process (utils.config.GPU_SECONDS): launch-bound,
    so per program whatever its size; the resident engine trains all MLPs and SIRENs as one program."""
    nets = [w for w in works if w.family in NETS]
    total = 0.0
    if engine == "resident" and nets:
        total += max(w.epochs for w in nets) * config.GPU_SECONDS[engine][("nets", nets[0].kind)]
        works = [w for w in works if w.family not in NETS]
    for w in works:
        depth = 1 + (w.depth - 2) / 4 if w.family in NETS else 1.0
        total += w.epochs * config.GPU_SECONDS[engine][(w.family, w.kind)] * depth
    return total


def cpu_makespan(seconds: list, workers: int) -> float:
    """When ``workers`` processes finish ensembles of these durations, longest first."""
    loads = [0.0] * max(workers, 1)
    for s in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += s
    return max(loads, default=0.0)


@dataclass(frozen=True)
class Placement:
    devices: dict      # family -> "cpu" or "cuda"
    cpu_workers: int   # worker processes for the families on the CPU
    cpu_estimate: float
    gpu_estimate: float
    all_cpu: float     # what the whole sweep would take on the CPUs alone
    all_gpu: float     # and on the GPU alone
    cuda: bool         # whether a GPU was there to place families on

    def header(self) -> str:
        """The run header's line: where each family trains and the estimates behind the choice."""
        parts = []
        on_cpu = [f for f, d in self.devices.items() if d == "cpu"]
        on_gpu = [f for f, d in self.devices.items() if d == "cuda"]
        if on_cpu:
            parts.append(f"{', '.join(on_cpu)} on {self.cpu_workers} CPU worker{'s' if self.cpu_workers != 1 else ''} "
                         f"(est. {self.cpu_estimate:.0f} s)")
        if on_gpu:
            parts.append(f"{', '.join(on_gpu)} on cuda (est. {self.gpu_estimate:.0f} s)")
        return "; ".join(parts)


def place(requested: str, works: list, workers: int, engine: str = "auto", cuda: bool | None = None) -> Placement:
    """Where each family of a sweep trains.

    ``cpu`` and ``cuda`` put every family there. ``auto`` on a machine with CUDA tries every split of
    the families between the CPU workers and one GPU process (which takes a core of its own) and keeps
    the one whose slower side finishes first, by the estimates of ``cpu_seconds`` and ``gpu_seconds``
    (ties go to the CPU); without CUDA every family trains on the CPU.
    """
    if cuda is None:
        cuda = resolve("auto") == "cuda" if requested != "cpu" else False
    families = list(dict.fromkeys(w.family for w in works))
    gpu_engine = engine_for(engine, "cuda")
    cpu_of = {f: [cpu_seconds(w) for w in works if w.family == f] for f in families}

    def split(on_gpu):
        n_cpu = max(1, workers - 1) if on_gpu else workers
        cpu = cpu_makespan([s for f in families if f not in on_gpu for s in cpu_of[f]], n_cpu)
        gpu = config.GPU_START_SECONDS + gpu_seconds([w for w in works if w.family in on_gpu], gpu_engine) \
            if on_gpu else 0.0
        return cpu, gpu, n_cpu

    all_cpu = split(())[0]
    all_gpu = split(tuple(families))[1]
    if requested == "cpu" or (requested == "auto" and not cuda):
        choice = ()
    elif requested == "cuda":
        choice = tuple(families)
    else:
        splits = [tuple(f for i, f in enumerate(families) if mask >> i & 1) for mask in range(2 ** len(families))]
        choice = min(splits, key=lambda on_gpu: (max(split(on_gpu)[:2]), len(on_gpu)))
    cpu, gpu, n_cpu = split(choice)
    return Placement({f: "cuda" if f in choice else "cpu" for f in families}, n_cpu, cpu, gpu, all_cpu, all_gpu,
                     cuda)
