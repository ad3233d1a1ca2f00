"""Benchmarks, printed side by side in one run: python bench/bench.py [--quick] [--parts 12345678]

1. ms per KAN training step (one LBFGS step of 20 iterations, full batch, [1,5,1], 1000 points):
   pykan's fit() with its defaults (torch's default thread count), pykan's fit() with 1 thread,
   and this pipeline (one member, the compiled objective), at G = 3, 20, 100, from the same model.
2. The same forward for the same parameters: pykan's model(x) against the pipeline's.
3. Final test error of both on the same grid schedule and step budget.
4. ms per loss-and-gradient evaluation of B tanh MLPs [1,5,5,1] on 1000 points, B = 1, 9, 45, 135:
   the members together (one batched evaluation) and one by one; on the CPU, and on CUDA if present.
5. ms per 2D PINN loss-and-gradient evaluation (10,000 interior + 800 boundary points) per family at
   B = 1 and B = 20: the engine (forward-mode Laplacian, members batched) against the previous path
   (nested autograd for the Laplacian, one model at a time).
6. section1_1.py --epochs E --models mlp siren: wall time with ensembles and --one-by-one.
7. Wall time and peak memory (all processes) of section1_1.py with one worker and with all cores.
8. ms per 2D PINN loss-and-gradient of a section 1.3 ensemble at depth 6 (its four problems), per
   activation: the activation step's written-out backward (``nets._ActivationStep``) against autograd
   (relu has none: its step is two products).
9. What float64 training costs against float32, per family: training seconds per epoch (optimizer
   steps, grid updates, refines, pruning; the float64 metrics, the same in both, left out) of one
   real ensemble of each family, section 1.1's nine datasets and section 1.3's four problems, the
   two precisions alternating, medians over the repetitions.
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

from utils.engine import nets, training  # noqa: E402
from utils.engine.kan_stack import StackedKAN  # noqa: E402
from utils.engine.nets import StackedNet  # noqa: E402
from utils.engine.training import KanStage, Members, autograd_objective  # noqa: E402
from utils.families import FAMILIES  # noqa: E402
from utils.models import pykan_compat  # noqa: E402
from utils.models.kan import KAN_CKPT_DIR, make_kan  # noqa: E402
from utils.pipeline.run import ensembles_of  # noqa: E402
from utils.problems.data import PoissonProblem, RegressionProblem, derivatives  # noqa: E402
from utils.problems.functions import FUNCTIONS_1D  # noqa: E402
from utils.problems.stacked import StackedProblem  # noqa: E402
from utils.sections import SECTIONS  # noqa: E402

DEFAULT_THREADS = torch.get_num_threads()


def problem():
    return RegressionProblem("sin_freq2", FUNCTIONS_1D["sin_freq2"], seed=0, dataset_idx=1)


def dataset(p):
    return {"train_input": p.train_x, "train_label": p.train_y, "test_input": p.test_x, "test_label": p.test_y}


def quiet_fit(model, p, steps):
    """pykan's fit() with its defaults; its progress bar goes to /dev/null."""
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        model.fit(dataset(p), steps=steps)


def pykan_ms_per_step(G, steps, threads):
    """pykan as released: without this pipeline's least-squares fix."""
    torch.set_num_threads(threads)
    p = problem()
    with pykan_compat.original():
        model = KAN(width=[1, 5, 1], grid=G, k=3, seed=0, auto_save=False, ckpt_path=KAN_CKPT_DIR)
        t0 = time.perf_counter()
        quiet_fit(model, p, steps)
        return (time.perf_counter() - t0) / steps * 1e3


def kan_stage(p, G):
    """One KAN member on problem p, ready to train as a section run trains it."""
    sp = StackedProblem([p])
    kans = [make_kan([1, 5, 1], G, seed=0, dtype=torch.float64)]  # the pipeline's default precision
    stacked, X = StackedKAN.from_pykan(kans)
    log = Members([{}])
    return KanStage(sp, stacked, X, kans, log, [0], "cpu", torch.float64, {}), log


def pipeline_ms_per_step(G, steps):
    torch.set_num_threads(1)
    run, log = kan_stage(problem(), G)
    run.train(steps, [0])
    return log.wall[0] / steps * 1e3  # training time only, not the metrics recorded after each step


def forward_agreement():
    torch.set_num_threads(1)
    worst = 0.0
    for G in (3, 20, 100):
        model = make_kan([1, 5, 1], G, seed=1)
        x = torch.rand(1000, 1) * 2 - 1
        with pykan_compat.original():
            ref = model(x)
        stacked, X = StackedKAN.from_pykan([model])
        out = stacked.forward(X, x[None])[0]
        worst = max(worst, ((out - ref).norm() / ref.norm()).item())
    return worst


def final_test_error(grids, steps_per_grid):
    """pykan: fit() then refine() at each grid; pipeline: the same schedule."""
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
    run, log = kan_stage(p, grids[0])
    run.schedule([steps_per_grid] * len(grids), grids, [0], "kan", [[]])
    return pykan_mse, log.rows[0][-1]["test_loss"]


def timed(fun, reps):
    fun()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fun()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps * 1e3


def mlp_evaluations(device, reps):
    """ms per loss-and-gradient of B MLPs: together, and one by one."""
    torch.set_num_threads(1)
    net = StackedNet("mlp", 1, 5, 3, "tanh")
    rows = []
    for B in (1, 9, 45, 135):
        X = net.init(list(range(B)), device=device)
        x = torch.rand(B, 1000, 1, device=device)
        y = torch.sin(6 * x)

        def loss_and_grad(Xb, xb, yb):
            Xr = Xb.detach().requires_grad_(True)
            loss = ((net.forward(Xr, xb) - yb) ** 2).mean((1, 2))
            return torch.autograd.grad(loss.sum(), Xr)[0]

        together = timed(lambda: loss_and_grad(X, x, y), reps)
        alone = timed(lambda: [loss_and_grad(X[b:b + 1], x[b:b + 1], y[b:b + 1]) for b in range(B)],
                      max(1, reps // B))
        rows.append((B, together, alone))
    return rows


def nested_pinn_loss(forward, p):
    """The previous path: the Laplacian by nested autograd through one model's forward."""
    boundary = torch.mean(forward(p.train_b) ** 2)
    _, _, lap = derivatives(forward, p.train_x, create_graph=True)
    return p.alpha * torch.mean((p.pde.sign * lap - p.f_train) ** 2) + boundary


def pinn_evaluations(reps):
    """ms per 2D PINN loss-and-gradient per family, at B = 1 and 20: engine vs nested autograd one by one."""
    torch.set_num_threads(1)
    names = ("poisson_2d_sin", "poisson_2d_poly", "poisson_2d_highfreq", "poisson_2d_spec")
    rows = []
    for family, make in (("mlp", lambda: StackedNet("mlp", 2, 5, 4, "tanh")),
                         ("siren", lambda: StackedNet("siren", 2, 5, 4)),
                         ("kan", None)):
        for B in (1, 20):
            problems = [PoissonProblem(names[b % 4], b // 4, b % 4) for b in range(B)]
            sp = StackedProblem(problems)
            if make:
                model = make()
                X = model.init(list(range(B)), dtype=torch.float64)
                singles = []
                for b in range(B):
                    m = model.module(X[b])
                    singles.append((m, list(m.parameters())))
            else:
                kans = [make_kan([2, 5, 1], 10, seed=b, dtype=torch.float64) for b in range(B)]
                model, X = StackedKAN.from_pykan(kans)
                singles = []
                for b in range(B):
                    one, Xb = StackedKAN.from_pykan([kans[b]])
                    Xb = Xb.requires_grad_(True)
                    singles.append((lambda x, one=one, Xb=Xb: one.forward(Xb, x[None])[0], [Xb]))
            fun = autograd_objective(sp, model, torch.float64)
            idx = torch.arange(B)
            engine = timed(lambda: fun(X.double(), idx), reps)

            def one_by_one():
                for (forward, params), p in zip(singles, problems):
                    torch.autograd.grad(nested_pinn_loss(forward, p), params)
            previous = timed(one_by_one, max(1, reps // B))
            rows.append((family, B, engine, previous))
    return rows


def activation_steps(reps):
    """ms per evaluation with and without the written-out backward, alternating, medians over ``reps``."""
    torch.set_num_threads(1)
    names = ("poisson_2d_sin", "poisson_2d_poly", "poisson_2d_highfreq", "poisson_2d_spec")
    sp = StackedProblem([PoissonProblem(name, 0, i) for i, name in enumerate(names)])
    rows, kept = [], set(nets.WRITTEN_BACKWARD)
    try:
        for family, activation in (("mlp", "tanh"), ("mlp", "silu"), ("siren", "sine")):
            net = StackedNet(family, 2, 5, 6, activation)
            X, idx = net.init(range(4), dtype=torch.float64), torch.arange(4)
            fun = autograd_objective(sp, net, torch.float64)
            runs = []
            for _ in range(reps):
                pair = []
                for written in (True, False):
                    nets.WRITTEN_BACKWARD = {activation} if written else set()
                    pair.append(timed(lambda: fun(X, idx), 3))
                runs.append(pair)
            rows.append((activation, *(statistics.median(r[i] for r in runs) for i in range(2)),
                         statistics.median(r[1] / r[0] for r in runs), activation in kept))
    finally:
        nets.WRITTEN_BACKWARD = kept
    return rows


PRECISION_CASES = {  # per section: (family, configuration, epochs)
    "section1_1": [("mlp", "depth=4 tanh", 12), ("mlp", "depth=4 silu", 12), ("siren", "depth=4", 12),
                   ("kan", "", 12), ("kan_pruning", "", 14)],
    "section1_3": [("mlp", "depth=4 tanh", 3), ("mlp", "depth=4 silu", 3), ("siren", "depth=4", 3),
                   ("kan", "", 6), ("kan_pruning", "", 7)],
}


def training_seconds(ensemble) -> float:
    """Training seconds of one ensemble: the optimizer steps as the rows count them, metrics excluded."""
    spent = []
    record = Members.record

    def counting(self, members, seconds, *a, **k):
        spent.append(seconds)
        return record(self, members, seconds, *a, **k)
    Members.record = counting
    try:
        getattr(training, FAMILIES[ensemble.family].trainer)(
            ensemble, [SECTIONS[ensemble.section].make_problem(t) for t in ensemble.tasks],
            [{} for _ in ensemble.tasks], dict(ensemble.config))
    finally:
        Members.record = record
    return sum(spent)


def precision_costs(reps):
    """Per section and family: seconds per epoch in float32 and float64 and their ratio (medians)."""
    torch.set_num_threads(1)
    rows = []
    for name, cases in PRECISION_CASES.items():
        section = SECTIONS[name]
        options = () if not section.is_pde else (("mode", "pinn"), ("alpha", 0.01), ("n_interior", 10_000),
                                                 ("n_boundary", 800))
        for family, label, epochs in cases:
            ensembles = {}
            for dtype in ("float32", "float64"):
                plan = {"section": name, "datasets": section.datasets, "families": [family], "seeds": [0],
                        "epochs": epochs, "device": "cpu", "problem_options": options, "dtype": dtype}
                ensembles[dtype] = [e for e in ensembles_of(plan) if not label or _label(e) == label][0]
            training_seconds(ensembles["float64"])  # warm-up: compiled code, caches
            runs = [[training_seconds(ensembles[d]) / epochs for d in ("float32", "float64")] for _ in range(reps)]
            f32, f64 = (statistics.median(r[i] for r in runs) for i in range(2))
            rows.append((name, family, label, len(ensembles["float64"].tasks), f32, f64,
                         statistics.median(r[1] / r[0] for r in runs)))
            print(f"   {name} {family:>11} {label:>13} {rows[-1][3]:>2} members {f32:8.3f} {f64:8.3f} "
                  f"{rows[-1][-1]:5.2f}x", flush=True)
    return rows


def _label(ensemble) -> str:
    c = dict(ensemble.config)
    return f"depth={c['depth']}" + (f" {c['activation']}" if "activation" in c else "")


def run_section(args, workers):
    """Wall time and peak resident memory summed over the process tree, sampled every 50 ms."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(ROOT / "section1_1.py"), *args, "--workers", str(workers),
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
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller section runs")
    ap.add_argument("--steps", type=int, default=10, help="training steps per timing (part 1)")
    ap.add_argument("--section-epochs", type=int, default=100, help="--epochs of the section1_1.py runs (parts 6, 7)")
    ap.add_argument("--parts", default="123456789", help="which parts to run, e.g. 13")
    args = ap.parse_args()
    reps = 1 if args.quick else 5
    os.makedirs(KAN_CKPT_DIR, exist_ok=True)

    print(f"torch {torch.__version__}, default threads {DEFAULT_THREADS}, {os.cpu_count()} cores, "
          f"{'CUDA: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA'}\n")
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
        for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            print(f"\n4. ms per loss-and-gradient evaluation, B tanh MLPs [1,5,5,1], 1000 points each, {device}")
            print(f"{'B':>5} {'together':>10} {'one by one':>11} {'speedup':>8}")
            for B, together, alone in mlp_evaluations(device, 20 if not args.quick else 3):
                print(f"{B:>5} {together:>10.2f} {alone:>11.2f} {alone / together:>7.1f}x", flush=True)
    if "5" in args.parts:
        print("\n5. ms per 2D PINN loss-and-gradient evaluation, 10,000 interior + 800 boundary points per member")
        print(f"{'family':>7} {'B':>3} {'engine':>9} {'nested autograd, one by one':>28} {'speedup':>8}")
        for family, B, engine, previous in pinn_evaluations(5 if not args.quick else 1):
            print(f"{family:>7} {B:>3} {engine:>9.1f} {previous:>28.1f} {previous / engine:>7.1f}x", flush=True)
    epochs = 3 if args.quick else args.section_epochs
    if "6" in args.parts:
        print(f"\n6. section1_1.py --epochs {epochs} --models mlp siren, all nine datasets, {os.cpu_count()} workers")
        for label, extra in (("ensembles", []), ("one by one", ["--one-by-one"])):
            wall, mem = run_section(["--epochs", str(epochs), "--models", "mlp", "siren", *extra], os.cpu_count())
            print(f"   {label:>10}: {wall:6.1f} s wall, peak memory {mem:.2f} GiB", flush=True)
    if "7" in args.parts:
        print(f"\n7. section1_1.py --epochs {epochs} (all families, all nine datasets)")
        for workers in (1, os.cpu_count()):
            wall, mem = run_section(["--epochs", str(epochs)], workers)
            print(f"   --workers {workers}: {wall:6.1f} s wall, peak memory {mem:.2f} GiB", flush=True)
    if "9" in args.parts:
        print("\n9. training seconds per epoch, float32 against float64 (one ensemble per family, all its datasets)")
        print(f"   {'section':10} {'family':>11} {'config':>13} {'B':>10} {'float32':>8} {'float64':>8} {'ratio':>6}")
        precision_costs(3 if not args.quick else 1)
    if "8" in args.parts:
        print("\n8. ms per 2D PINN loss-and-gradient, a section 1.3 ensemble (4 members), depth 6, by activation step")
        print(f"{'activation':>10} {'written-out backward':>21} {'autograd':>9} {'ratio':>6}  used")
        for act, written, auto, ratio, used in activation_steps(5 if not args.quick else 1):
            print(f"{act:>10} {written:>21.1f} {auto:>9.1f} {ratio:>5.2f}x  {'written' if used else 'autograd'}",
                  flush=True)


if __name__ == "__main__":
    main()
