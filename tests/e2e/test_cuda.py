"""The CUDA path: data and models stay on the device (skipped where no GPU is present)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils import load_run
from utils.config import LBFGS_OPTIONS
from utils.engine.kan_stack import StackedKAN
from utils.engine.nets import StackedNet
from utils.models import pykan_compat
from utils.models.kan import make_kan
from utils.optim.lbfgs import BatchedLBFGS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("G", [3, 100])
def test_stacked_kan_matches_pykan_on_cuda(G):
    models = [make_kan([2, 5, 1], G, seed=s, device="cuda") for s in range(3)]
    x = torch.rand(3, 500, 2, device="cuda")
    stacked, X = StackedKAN.from_pykan(models)
    out = stacked.forward(X, x)
    u, grad, lap = stacked.derivatives(X, x)
    assert out.device.type == "cuda" and torch.isfinite(lap).all()
    for b, m in enumerate(models):
        with pykan_compat.original():
            ref = m(x[b])
        assert ((out[b] - ref).norm() / ref.norm()).item() < 1e-5
    X2 = stacked.update_grid(X, x, torch.arange(3, device="cuda"))  # the GPU's least squares
    assert torch.isfinite(X2).all()


def test_batched_lbfgs_on_cuda_equals_the_cpu():
    """The torch path of the optimizer (the GPU's) against the compiled CPU path, in float64."""
    net = StackedNet("mlp", 1, 5, 3, "tanh")
    X = net.init([0, 1, 2], dtype=torch.float64)
    x = torch.rand(3, 200, 1, dtype=torch.float64)
    y = torch.sin(6 * x)

    def objective(device):
        xd, yd = x.to(device), y.to(device)

        def fun(Xb, idx):
            Xr = Xb.clone().requires_grad_(True)
            loss = ((net.forward(Xr, xd[idx]) - yd[idx]) ** 2).mean((1, 2))
            return loss.detach(), torch.autograd.grad(loss.sum(), Xr)[0]
        return fun

    out = []
    for device in ("cpu", "cuda"):
        opt = BatchedLBFGS(3, X.shape[1], device=device, **LBFGS_OPTIONS)
        out.append(opt.step(objective(device), X.to(device)).cpu())
    assert ((out[0] - out[1]).norm() / out[0].norm()).item() < 1e-8


@pytest.mark.parametrize("script", ["section1_1.py", "section1_2.py", "section1_3.py"])
def test_quick_section_on_cuda(tmp_path, script):
    proc = subprocess.run([sys.executable, str(ROOT / script), "--quick", "--device", "cuda", "--no-progress",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results, meta = load_run(script[:-3], results_dir=tmp_path)
    assert meta["device"] == "cuda"
    for df in results.values():
        assert df["dense_mse"].notna().all()


# ----------------------------------------------------------------------------- the resident engine (issue 23)

def _mlp_members(device, B=4, n=200):
    """A small float64 MLP ensemble's objective on ``device``: (net, X0, fun(X) -> (loss, grad))."""
    net = StackedNet("mlp", 1, 5, 3, "tanh")
    X = net.init(list(range(B)), dtype=torch.float64).to(device)
    x = torch.rand(B, n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.sin(6 * x)

    def fun(Xall):
        Xr = Xall.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = ((net.forward(Xr, x) - y) ** 2).mean((1, 2))
            (G,) = torch.autograd.grad(loss.sum(), Xr)
        return loss.detach(), G
    return net, X, fun


def _resident(X, steps, fun, device, graphs):
    from utils.engine import ticks
    from utils.optim.resident import ResidentLBFGS
    opt = ResidentLBFGS(X.shape[0], X.shape[1], device=device, max_steps=steps, **LBFGS_OPTIONS)
    ticks.run(opt, fun, X, torch.full((X.shape[0],), steps, dtype=torch.long), device, graphs=graphs)
    return opt.x.clone()


def test_a_resident_tick_never_waits_for_the_host():
    """Eager ticks under torch's sync debug mode "error": any host read inside a tick (``.item()``,
    a boolean mask, ``nonzero``) raises. Only the "all done" flag between ticks is read."""
    from utils.optim.resident import ResidentLBFGS
    _, X, fun = _mlp_members("cuda")
    opt = ResidentLBFGS(X.shape[0], X.shape[1], device="cuda", max_steps=3, **LBFGS_OPTIONS)
    opt.start(X, 3)
    fun(opt.x)   # lazy initialisations (cuBLAS handles) happen outside the checked ticks
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            opt.tick(fun)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(opt.ticks) == 10


def test_resident_ticks_replayed_as_cuda_graphs_equal_eager_ticks_and_the_cpu(capsys):
    _, X, fun = _mlp_members("cpu")
    cpu = _resident(X, 5, fun, "cpu", graphs=False)
    _, X, fun = _mlp_members("cuda")
    eager = _resident(X, 5, fun, "cuda", graphs=False)
    graphs = _resident(X, 5, fun, "cuda", graphs=True)
    assert "could not be captured" not in capsys.readouterr().err  # the graph path ran, not its fallback
    assert ((graphs - eager).norm() / eager.norm()).item() < 1e-10
    assert ((eager.cpu() - cpu).norm() / cpu.norm()).item() < 1e-6   # five steps of chaotic L-BFGS, float64


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_quick_section_with_the_resident_engine(tmp_path, device):
    """--engine resident on the GPU, and --device auto's placement (each family where it runs faster),
    give finite rows for every family, and the run records where each family trained."""
    proc = subprocess.run([sys.executable, str(ROOT / "section1_1.py"), "--quick", "--device", device,
                           "--engine", "auto", "--no-progress", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results, meta = load_run("section1_1", results_dir=tmp_path)
    assert set(results) == {"mlp", "siren", "kan", "kan_pruning"}
    for family, df in results.items():
        assert df["dense_mse"].notna().all()
        assert df.attrs["device"] in ("cpu", "cuda") if device == "auto" else df.attrs["device"] == "cuda"
