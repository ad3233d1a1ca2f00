"""Benchmarks, printed side by side in one run: python bench/bench.py [--quick]

1. ms per KAN training step (one LBFGS step of 20 iterations, full batch, [1,5,1], 1000 points):
   pykan's fit() with its defaults (torch's default thread count), pykan's fit() with 1 thread,
   and this pipeline's training, at G = 3, 20, 100. Every timed run starts from the same model.
2. The same forward for the same parameters: pykan's model(x) against the pipeline's.
3. Final test error of both on the same grid schedule and step budget.
4. Wall time and peak memory (all processes of the run together) of section1_1.py with one worker
   and with all cores.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import torch  # noqa: E402

from kan import KAN  # noqa: E402

from utils import kan_fast, pykan_compat  # noqa: E402
from utils.datasets import FUNCTIONS_1D, RegressionProblem  # noqa: E402
from utils.models import KAN_CKPT_DIR, make_kan  # noqa: E402
from utils.training import Recorder, grid_update_schedule, kan_objective, run_steps, train_kan  # noqa: E402

DEFAULT_THREADS = torch.get_num_threads()


def problem():
    return RegressionProblem("sin_freq2", FUNCTIONS_1D["sin_freq2"], seed=0, dataset_idx=1)


def dataset(p):
    return {"train_input": p.train_x, "train_label": p.train_y, "test_input": p.test_x, "test_label": p.test_y}


def pykan_ms_per_step(G, steps, threads):
    """pykan as released: without this pipeline's least-squares fix."""
    torch.set_num_threads(threads)
    p = problem()
    with pykan_compat.original():
        model = KAN(width=[1, 5, 1], grid=G, k=3, seed=0, auto_save=False, ckpt_path=KAN_CKPT_DIR)
        t0 = time.perf_counter()
        quiet_fit(model, p, steps)
        return (time.perf_counter() - t0) / steps * 1e3


def quiet_fit(model, p, steps):
    """pykan's fit() with its defaults; its progress bar goes to /dev/null."""
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        model.fit(dataset(p), steps=steps)


def pipeline_ms_per_step(G, steps):
    torch.set_num_threads(1)
    p = problem()
    model = make_kan([1, 5, 1], G, seed=0)
    rec = Recorder(p, {})  # its wall_time counts training only, not the metrics it records
    run_steps(kan_objective(model, p), steps, rec, lambda x: kan_fast.forward(model, x), model,
              grid_update_schedule(model, p.train_x))
    return rec.wall / steps * 1e3


def forward_agreement():
    torch.set_num_threads(1)
    worst = 0.0
    for G in (3, 20, 100):
        model = make_kan([1, 5, 1], G, seed=1)
        x = torch.rand(1000, 1) * 2 - 1
        with pykan_compat.original():
            ref = model(x)
        out = kan_fast.forward(model, x)
        worst = max(worst, ((out - ref).norm() / ref.norm()).item())
    return worst


def final_test_error(grids, steps_per_grid):
    """pykan: fit() then refine() at each grid; pipeline: train_kan with the same budget."""
    torch.set_num_threads(1)
    p = problem()
    with pykan_compat.original():
        model = KAN(width=[1, 5, 1], grid=grids[0], k=3, seed=0, auto_save=False, ckpt_path=KAN_CKPT_DIR)
        for i, G in enumerate(grids):
            if i:
                model = model.refine(G)
                model.auto_save = False
            quiet_fit(model, p, steps_per_grid)
        with torch.no_grad():
            pykan_mse = torch.mean((model(p.test_x) - p.test_y) ** 2).item()
    rec = Recorder(p, {})
    train_kan(p, steps_per_grid * len(grids), rec, seed=0, grids=grids)
    return pykan_mse, rec.rows[-1]["test_loss"]


def run_section(epochs, workers):
    """Wall time and peak resident memory summed over the process tree, sampled every 50 ms."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(ROOT / "section1_1.py"), "--epochs", str(epochs), "--workers", str(workers),
               "--results-dir", out, "--no-progress"]
        t0 = time.perf_counter()
        proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [proc] + proc.children(recursive=True)
                peak = max(peak, sum(q.memory_info().rss for q in tree if q.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
        if proc.returncode:
            raise SystemExit(f"section1_1.py failed: {proc.stderr.read().decode()[-500:]}")
        return time.perf_counter() - t0, peak / 2 ** 30


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller section run")
    ap.add_argument("--steps", type=int, default=10, help="training steps per timing")
    ap.add_argument("--section-epochs", type=int, default=10, help="--epochs of the section1_1.py runs")
    ap.add_argument("--parts", default="1234", help="which parts to run, e.g. 13")
    args = ap.parse_args()
    reps = 1 if args.quick else 5
    os.makedirs(KAN_CKPT_DIR, exist_ok=True)

    print(f"torch {torch.__version__}, default threads {DEFAULT_THREADS}, {os.cpu_count()} cores\n")
    if "1" in args.parts:
        print("1. ms per KAN training step (median of %d runs of %d steps; speedups: median of the runs' ratios)"
              % (reps, args.steps))
        print(f"{'G':>5} {'pykan fit() defaults':>21} {'pykan fit() 1 thread':>21} {'pipeline':>9} "
              f"{'speedup vs defaults':>20} {'vs 1 thread':>12}")
        pykan_ms_per_step(3, 2, DEFAULT_THREADS)  # untimed warm-ups: first-call costs (numba's
        pipeline_ms_per_step(3, 2)                  # compiled-code cache, torch's lazy init) are not steps
        for G in (3, 20, 100):
            # the three back to back in every repetition: this machine's speed drifts within minutes,
            # so each ratio compares timings taken moments apart; medians over the repetitions
            runs = [(pykan_ms_per_step(G, args.steps, DEFAULT_THREADS), pykan_ms_per_step(G, args.steps, 1),
                     pipeline_ms_per_step(G, args.steps)) for _ in range(reps)]
            a, b, c = (statistics.median(r[i] for r in runs) for i in range(3))
            vs_a, vs_b = (statistics.median(r[i] / r[2] for r in runs) for i in range(2))
            print(f"{G:>5} {a:>21.1f} {b:>21.1f} {c:>9.1f} {vs_a:>19.1f}x {vs_b:>11.1f}x", flush=True)
    if "2" in args.parts:
        print(f"\n2. forward of the same parameters, max relative difference to pykan: {forward_agreement():.1e}")
    if "3" in args.parts:
        grids, per = ((3, 5, 10), 5) if args.quick else ((3, 5, 10, 20, 50), 10)
        pk, ours = final_test_error(grids, per)
        print(f"\n3. final test MSE, grids {grids}, {per} steps per grid: pykan {pk:.3e}, pipeline {ours:.3e} "
              f"(ratio {ours / pk:.2f})")
    if "4" in args.parts:
        epochs = 3 if args.quick else args.section_epochs
        print(f"\n4. section1_1.py --epochs {epochs} (all families, all nine datasets)")
        for workers in (1, os.cpu_count()):
            wall, mem = run_section(epochs, workers)
            print(f"   --workers {workers}: {wall:6.1f} s wall, peak memory {mem:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
