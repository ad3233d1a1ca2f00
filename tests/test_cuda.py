"""The CUDA path: data and models stay on the device (skipped where no GPU is present)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils import kan_fast, load_run, pykan_compat
from utils.models import make_kan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("G", [3, 100])
def test_fast_forward_matches_pykan_on_cuda(G):
    model = make_kan([2, 5, 1], G, seed=0, device="cuda")
    x = torch.rand(500, 2, device="cuda", requires_grad=True)
    with pykan_compat.original():
        ref = model(x)
    fast = kan_fast.forward(model, x)
    assert fast.device.type == "cuda"
    assert ((fast - ref).norm() / ref.norm()).item() < 1e-5
    g_ref, = torch.autograd.grad(ref.pow(2).sum(), x)
    g_fast, = torch.autograd.grad(fast.pow(2).sum(), x)
    assert ((g_fast - g_ref).norm() / g_ref.norm()).item() < 1e-5


@pytest.mark.parametrize("script", ["section1_1.py", "section1_2.py", "section1_3.py"])
def test_quick_section_on_cuda(tmp_path, script):
    proc = subprocess.run([sys.executable, str(ROOT / script), "--quick", "--device", "cuda", "--no-progress",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results, meta = load_run(script[:-3], results_dir=tmp_path)
    assert meta["device"] == "cuda"
    for df in results.values():
        assert df["dense_mse"].notna().all()
