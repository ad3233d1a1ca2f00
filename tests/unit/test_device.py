"""The one device decision: resolve, engine_for, and --device auto's placement of families (issue 23)."""
import pytest
import torch

from utils import config
from utils.device import DeviceError, Work, cpu_makespan, cpu_seconds, engine_for, gpu_seconds, place, resolve


def section_like(kind, members, points):
    """A section's ensembles as the cost model sees them: 15 MLP and 5 SIREN configurations, a KAN and
    a pruned KAN, 100 epochs."""
    return ([Work("mlp", kind, members, 100, points, d) for d in (2, 3, 4, 5, 6) for _ in range(3)]
            + [Work("siren", kind, members, 100, points, d) for d in (2, 3, 4, 5, 6)]
            + [Work("kan", kind, members, 100, points), Work("kan_pruning", kind, members, 100, points)])


def test_resolve_and_engine():
    assert resolve("cpu") == "cpu" and resolve("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="one of auto, cpu, cuda"):
        resolve("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve("cuda")
    assert engine_for("auto", "cuda") == "resident" and engine_for("auto", "cpu") == "host"
    assert engine_for("resident", "cpu") == "resident" and engine_for("host", "cuda") == "host"


def test_estimates_follow_the_constants():
    w = Work("kan", "pinn", 4, 100, 10_800)
    fixed, per_1000 = config.CPU_SECONDS[("kan", "pinn")]
    assert cpu_seconds(w) == pytest.approx(4 * 100 * (fixed + per_1000 * 10.8))
    assert gpu_seconds([w], "host") == pytest.approx(100 * config.GPU_SECONDS["host"][("kan", "pinn")])
    # the resident engine's nets are one program: its cost does not grow with the configurations
    nets = section_like("pinn", 4, 10_800)[:20]
    assert gpu_seconds(nets, "resident") == gpu_seconds(nets[:1], "resident") == pytest.approx(
        100 * config.GPU_SECONDS["resident"][("nets", "pinn")])
    assert gpu_seconds(nets, "host") > 19 * gpu_seconds(nets[:1], "host")
    deep = Work("mlp", "regression", 9, 100, 1000, 6)
    assert cpu_seconds(deep) == pytest.approx(1.5 * cpu_seconds(Work("mlp", "regression", 9, 100, 1000, 4)))
    assert cpu_makespan([4, 3, 3, 2], 2) == 6 and cpu_makespan([10, 1, 1], 4) == 10 and cpu_makespan([], 3) == 0


def test_without_cuda_every_family_trains_on_the_cpu():
    p = place("auto", section_like("regression", 9, 1000), 2, cuda=False)
    assert set(p.devices.values()) == {"cpu"} and p.cpu_workers == 2 and p.gpu_estimate == 0
    assert p.header().startswith("mlp, siren, kan, kan_pruning on 2 CPU workers (est. ")


def test_auto_puts_each_family_where_the_sweep_finishes_first(monkeypatch):
    """With made-up constants where the GPU is far faster for KANs and far slower for nets, auto
    splits: KANs on cuda, nets on the CPU workers less the GPU process's core; the split beats both
    all-CPU and all-GPU, and the header says so with the estimates."""
    monkeypatch.setitem(config.GPU_SECONDS, "resident", {k: (0.001 if k[0].startswith("kan") else 10.0)
                                                          for k in config.GPU_SECONDS["resident"]})
    works = section_like("pinn", 4, 10_800)
    p = place("auto", works, 16, cuda=True)
    assert p.devices == {"mlp": "cpu", "siren": "cpu", "kan": "cuda", "kan_pruning": "cuda"}
    assert p.cpu_workers == 15 and max(p.cpu_estimate, p.gpu_estimate) < min(p.all_cpu, p.all_gpu)
    assert p.header() == (f"mlp, siren on 15 CPU workers (est. {p.cpu_estimate:.0f} s); "
                          f"kan, kan_pruning on cuda (est. {p.gpu_estimate:.0f} s)")
    # a GPU slower for everything: nothing moves there, whatever auto could try
    monkeypatch.setitem(config.GPU_SECONDS, "resident", dict.fromkeys(config.GPU_SECONDS["resident"], 10.0))
    assert set(place("auto", works, 16, cuda=True).devices.values()) == {"cpu"}


def test_requested_devices_are_honoured():
    works = section_like("regression", 9, 1000)
    assert set(place("cuda", works, 16, cuda=True).devices.values()) == {"cuda"}
    assert set(place("cpu", works, 16, cuda=True).devices.values()) == {"cpu"}
    p = place("cuda", works, 16, cuda=True)
    assert p.all_gpu == pytest.approx(p.gpu_estimate) and p.all_cpu > 0  # what the note compares


def test_the_run_header_says_where_each_family_trains(monkeypatch, capsys):
    """The command line's decision for a real sweep (section 1.3's defaults, 16 cores), on a machine
    pretending to have CUDA: the options hold each family's device, the header says why."""
    import utils.device
    from utils.pipeline import cli
    from utils.sections import SECTIONS
    monkeypatch.setattr(utils.device, "resolve", lambda name: "cpu" if name == "cpu" else "cuda")
    monkeypatch.setitem(config.GPU_SECONDS, "resident", {k: (0.001 if k[0].startswith("kan") else 10.0)
                                                          for k in config.GPU_SECONDS["resident"]})
    section = SECTIONS["section1_3"]
    args = cli.build_parser(section).parse_args(["--workers", "16"])
    options = cli.plan("section1_3.py", section, args)
    (line,) = cli.place_families("section1_3.py", args, options)
    assert options["devices"] == {"mlp": "cpu", "siren": "cpu", "kan": "cuda", "kan_pruning": "cuda"}
    assert line.startswith("device auto: mlp, siren on 15 CPU workers (est. ") and "kan, kan_pruning on cuda" in line
    # --device cuda is honoured, with a note where the estimate says the CPUs would be faster
    monkeypatch.setitem(config.GPU_SECONDS, "resident", dict.fromkeys(config.GPU_SECONDS["resident"], 10.0))
    args = cli.build_parser(section).parse_args(["--workers", "16", "--device", "cuda"])
    options = cli.plan("section1_3.py", section, args)
    assert cli.place_families("section1_3.py", args, options) == []
    assert set(options["devices"].values()) == {"cuda"}
    note = capsys.readouterr().err
    assert note.startswith("section1_3.py: note: --device cuda: est. ") and "on 16 CPU workers" in note
