"""What a GPU does with the resident engine's ticks (issue 23, part A of bench/gpu_engine_check.sh).

    python bench/gpu_engine_check.py launches   microseconds per eager launch and per replayed graph
                                                node; whether two streams' graphs overlap
    python bench/gpu_engine_check.py ticks      per family's first ensemble of sections 1.1 and 1.3:
                                                aten ops and host syncs per tick, a capture of the
                                                tick (smoke test of every operation it uses), ms per
                                                tick eager and replayed, and replays bit-equal to
                                                eager ticks and to each other

Prints figures; runs on torch versions older than the pinned one (only torch.cuda.graph,
CUDAGraph, set_sync_debug_mode, all in torch >= 1.10).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from utils.config import LBFGS_OPTIONS  # noqa: E402
from utils.engine import ticks as ticks_mod  # noqa: E402
from utils.engine import training  # noqa: E402
from utils.optim.resident import ResidentLBFGS  # noqa: E402
from utils.pipeline.run import ensembles_of  # noqa: E402
from utils.sections import SECTIONS  # noqa: E402

from tick_floor import Counting, initial_objective  # noqa: E402  (bench/, the script's folder)

CUDA = torch.device("cuda")   # --dry-run: "cpu", to check this script without a GPU (no capture)


def sync():
    if CUDA.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn, reps):
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) / reps


def launches():
    x = torch.zeros(64, device=CUDA)
    n = 1000

    def eager():
        for _ in range(n):
            x.add_(1)
    eager()
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        eager()
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        eager()
    print(f"eager launch: {seconds(eager, 5) / n * 1e6:.2f} us per kernel")
    print(f"graph replay: {seconds(graph.replay, 20) / n * 1e6:.2f} us per node ({n} nodes per graph)")

    # two small-kernel graphs (each far from filling the card), one after the other or on two streams
    a, b = (torch.randn(64, 64, device=CUDA) for _ in range(2))
    graphs = []
    for m in (a, b):
        g = torch.cuda.CUDAGraph()
        with torch.cuda.stream(side):
            for _ in range(3):
                for _ in range(200):
                    m.copy_(torch.tanh(m @ m) * 0.5)
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(g):
            for _ in range(200):
                m.copy_(torch.tanh(m @ m) * 0.5)
        graphs.append(g)
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()

    def serial():
        graphs[0].replay()
        graphs[1].replay()

    def overlapped():
        with torch.cuda.stream(s1):
            graphs[0].replay()
        with torch.cuda.stream(s2):
            graphs[1].replay()
        torch.cuda.current_stream().wait_stream(s1)
        torch.cuda.current_stream().wait_stream(s2)
    ts, to = seconds(serial, 20), seconds(overlapped, 20)
    print(f"two graphs of 200 small matmuls: serial {ts * 1e3:.2f} ms, on two streams {to * 1e3:.2f} ms "
          f"(overlap {'yes' if to < 0.75 * ts else 'no'}: {ts / to:.2f}x)")


def first_objectives(section_name):
    """(program, config, B, fun(Xall), X, row_sum) for the first ensemble of each family of a section
    at its defaults and for its merged nets program (every MLP and SIREN), on the GPU, in float64
    (the objective a resident tick evaluates)."""
    section = SECTIONS[section_name]
    options = {"section": section_name, "datasets": section.datasets, "families": ["mlp", "siren", "kan"],
               "seeds": [0], "epochs": 100, "device": CUDA.type, "engine": "resident",
               "problem_options": () if not section.is_pde else (("mode", "pinn"), ("alpha", 0.01),
                                                                  ("n_interior", 10_000 if section.dim == 2 else 1000),
                                                                  ("n_boundary", 800 if section.dim == 2 else 2))}
    nets = [ens for ens in ensembles_of(options) if ens.family in ("mlp", "siren")]
    slots, problem, merged, X = training.merged_program(nets, [[section.make_problem(t) for t in e.tasks] for e in nets])
    fun = training.autograd_objective(problem, merged, torch.float64)
    yield "nets", "all MLPs and SIRENs", len(slots), lambda Xall, fun=fun: fun(Xall, None), X, merged.own_row_sum(CUDA)
    seen = set()
    for ens in ensembles_of(options):
        if ens.family in seen:
            continue
        seen.add(ens.family)
        fun, X = initial_objective(ens, CUDA)
        yield ens.family, dict(ens.config), len(ens.tasks), (lambda Xall, fun=fun: fun(Xall, None)), X, None


def fresh(B, X, row_sum, steps=3):
    opt = ResidentLBFGS(B, X.shape[1], device=CUDA, max_steps=steps, row_sum=row_sum, **LBFGS_OPTIONS)
    opt.start(X, steps)
    return opt


def ticks():
    print(f"{'section':>10} {'family':>6} {'B':>3} {'aten ops':>8} {'syncs':>5} {'capture':>8} "
          f"{'eager ms':>8} {'graph ms':>8} {'graph = eager':>13} {'replays equal':>13}  config")
    for section in ("section1_1", "section1_3"):
        for family, config, B, fun, X, row_sum in first_objectives(section):
            opt = fresh(B, X, row_sum)
            for _ in range(3):
                opt.tick(fun)   # lazy initialisations out of the way
            with Counting() as c:
                opt.tick(fun)
            sync()
            debug = CUDA.type == "cuda"
            if debug:
                torch.cuda.set_sync_debug_mode("warn")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(5):
                    opt.tick(fun)
                sync()
            if debug:
                torch.cuda.set_sync_debug_mode("default")
            syncs = sum("synchroniz" in str(w.message) for w in caught) / 5
            k = 20
            eager_opt = fresh(B, X, row_sum)
            eager_s = seconds(lambda: [eager_opt.tick(fun) for _ in range(k)], 1) / k
            runs = []
            for _ in range(2):
                g_opt = fresh(B, X, row_sum)
                graph = ticks_mod._capture(g_opt, fun, k) if debug else None  # WARMUP eager ticks, k captured
                if graph is None:
                    runs = None
                    break
                graph_s = seconds(graph.replay, 1) / k
                runs.append((g_opt.x.clone(), graph_s))
            ref = fresh(B, X, row_sum)
            for _ in range(ticks_mod.WARMUP + k):
                ref.tick(fun)
            if runs is None:
                print(f"{section:>10} {family:>6} {B:>3} {c.n:>8} {syncs:>5.1f} {'FAILED' if debug else 'skipped':>8} {eager_s * 1e3:>8.2f}")
                continue
            same_eager = torch.equal(runs[0][0], ref.x)
            close = ((runs[0][0] - ref.x).norm() / ref.x.norm()).item()
            print(f"{section:>10} {family:>6} {B:>3} {c.n:>8} {syncs:>5.1f} {'ok':>8} {eager_s * 1e3:>8.2f} "
                  f"{runs[0][1] * 1e3:>8.2f} {'bitwise' if same_eager else f'{close:.1e}':>13} "
                  f"{str(torch.equal(runs[0][0], runs[1][0])):>13}  {config}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["launches", "ticks"])
    ap.add_argument("--dry-run", action="store_true", help="on the CPU, without capture (checks the script)")
    args = ap.parse_args()
    global CUDA
    if args.dry_run:
        CUDA = torch.device("cpu")
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        sys.exit("gpu_engine_check: needs CUDA")
    print(f"{torch.cuda.get_device_name() if CUDA.type == 'cuda' else 'cpu (dry run)'}, torch {torch.__version__}")
    {"launches": launches, "ticks": ticks}[args.what]()


if __name__ == "__main__":
    main()
