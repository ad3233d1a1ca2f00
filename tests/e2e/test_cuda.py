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
