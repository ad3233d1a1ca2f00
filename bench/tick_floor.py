"""How many sequential ticks a section needs, whatever the hardware: python bench/tick_floor.py [--epochs 100]

A tick is one round of the optimizer's requests: at most one objective evaluation per member. pykan's
strong-Wolfe search is sequential per member (a trial point depends on the previous trial's loss
and gradient), so a section needs at least as many ticks as its slowest member's evaluations, on a
GPU as on a CPU. This trains a section in this process with the host engine (its numbers are the
sweep's) and counts every member's evaluations per optimizer step, then reports, per program (all
MLPs and SIRENs of the section as one program; the KANs; the pruned KANs):

- evaluations per member per step (mean and maximum);
- ticks in lockstep: the sum over steps of the slowest member's evaluations (members wait for each
  other at every step end, as BatchedLBFGS's do);
- ticks decoupled: each member runs its own steps, so the slowest member's total (KANs still meet at
  their barriers: grid updates and refines, where every member waits for the slowest);

and aten operations per tick (a TorchDispatchMode counter, ~ CUDA kernel launches): the host engine's
(objective and optimizer, one step of one ensemble of each family, divided by its ticks) and the
resident engine's (its tick, objective included).
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from utils.config import GRID_UPDATE_EVERY, GRID_UPDATE_UNTIL, KAN_GRIDS  # noqa: E402
from utils.engine import training  # noqa: E402
from utils.optim.lbfgs import BatchedLBFGS  # noqa: E402
from utils.pipeline.run import ensembles_of  # noqa: E402
from utils.pipeline.sweep import run_ensemble  # noqa: E402
from utils.sections import SECTIONS  # noqa: E402

PROGRAMS = {"mlp": "nets (MLP + SIREN)", "siren": "nets (MLP + SIREN)", "kan": "KAN", "kan_pruning": "pruned KAN"}


class Counting(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def count_evaluations():
    """Patch the host engine so that each member's evaluations in each of its epochs are recorded;
    returns {(ensemble log, member): [evaluations in epoch 1, 2, ...]}."""
    per_epoch, current, logs = defaultdict(list), {}, []
    step, evaluate, record = BatchedLBFGS.step, BatchedLBFGS._evaluate, training.Members.record

    def counted_step(self, fun, x, members=None):
        current.clear()
        return step(self, fun, x, members)

    def counted_evaluate(self, fun, x, reqs, first_eval):
        for b, _ in reqs:
            current[b] = current.get(b, 0) + 1
        return evaluate(self, fun, x, reqs, first_eval)

    def counted_record(self, members, seconds, metrics, params, **columns):
        if current:  # the members of the step just taken, in order (run_stage lists them increasing)
            if "_log" not in self.__dict__:  # an id of its own: id() is reused once an ensemble is done
                self._log = len(logs)
                logs.append(self)
            log = self._log
            for member, b in zip(members, sorted(current)):
                per_epoch[(log, member)].append(current[b])
            current.clear()
        return record(self, members, seconds, metrics, params, **columns)
    BatchedLBFGS.step, BatchedLBFGS._evaluate, training.Members.record = counted_step, counted_evaluate, counted_record
    return per_epoch


def ticks(per_member_steps, segments):
    """(lockstep, decoupled) ticks of members' per-step evaluation counts; ``segments``: the step
    ranges between barriers (decoupled members wait for each other only there)."""
    n_steps = max(len(v) for v in per_member_steps.values())
    lock = sum(max(v[s] for v in per_member_steps.values() if s < len(v)) for s in range(n_steps))
    free = sum(max(sum(v[a:b]) for v in per_member_steps.values()) for a, b in segments)
    return lock, free


def kan_segments(epochs, n_grids, pruned):
    """Step ranges between a KAN program's barriers: grid updates and the refines between grids."""
    stages = training.split_budget(epochs, n_grids + (1 if pruned else 0))
    out, at = [], 0
    for steps in stages:
        cuts = [s for s in range(steps) if s % GRID_UPDATE_EVERY == 0 and s < GRID_UPDATE_UNTIL] + [steps]
        out += [(at + a, at + b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        at += steps
    return out


def initial_objective(ensemble, device="cpu"):
    """(objective, X): an ensemble's members at their initial parameters, in float64 on ``device``
    (its problems where its tasks put them), a KAN's through the batched torch objective."""
    from utils.engine.kan_stack import StackedKAN
    from utils.engine.nets import StackedNet
    from utils.models.kan import make_kan
    from utils.problems.stacked import StackedProblem
    problem = StackedProblem([SECTIONS[ensemble.section].make_problem(t) for t in ensemble.tasks])
    config = dict(ensemble.config)
    seeds = [t.seed for t in ensemble.tasks]
    if "depth" in config:
        model = StackedNet(ensemble.family, problem.n_in, config["width"], config["depth"],
                           config.get("activation", "sine"))
        X = model.init(seeds, dtype=torch.float64).to(device)
    else:
        model, X = StackedKAN.from_pykan([make_kan([problem.n_in, config["width"], 1], ensemble.grids[0], seed=s,
                                                   dtype=torch.float64, device=device) for s in seeds])
    return training.autograd_objective(problem, model, torch.float64), X


def ops_per_tick(ensemble):
    """(host engine's aten ops per tick, resident engine's) for one step of the ensemble's members
    (a KAN's through the batched torch objective, the GPU's)."""
    from utils.config import LBFGS_OPTIONS
    from utils.optim.resident import ResidentLBFGS
    fun, X = initial_objective(ensemble)
    B = len(ensemble.tasks)
    host = BatchedLBFGS(B, X.shape[1], compiled=False, **LBFGS_OPTIONS)
    X = host.step(fun, X)  # a first step: the history fills
    rounds, serve = [0], BatchedLBFGS._evaluate

    def counting_rounds(self, *a, **k):
        rounds[0] += 1
        return serve(self, *a, **k)
    BatchedLBFGS._evaluate = counting_rounds
    with Counting() as c:
        host.step(fun, X)
    BatchedLBFGS._evaluate = serve
    resident = ResidentLBFGS(B, X.shape[1], max_steps=2, **LBFGS_OPTIONS)
    resident.start(X, 2)
    for _ in range(5):
        resident.tick(lambda Xall: fun(Xall, None))
    with Counting() as r:
        resident.tick(lambda Xall: fun(Xall, None))
    return c.n / rounds[0], r.n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("section", nargs="?", default="section1_1", choices=list(SECTIONS))
    ap.add_argument("--epochs", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    section = SECTIONS[args.section]
    options = {"section": args.section, "datasets": section.datasets, "families": ["mlp", "siren", "kan", "kan_pruning"],
               "seeds": [0], "epochs": args.epochs, "device": "cpu", "engine": "host",
               "problem_options": () if not section.is_pde else (("mode", "pinn"), ("alpha", 0.01),
                                                                  ("n_interior", 10_000 if section.dim == 2 else 1000),
                                                                  ("n_boundary", 800 if section.dim == 2 else 2))}
    log = count_evaluations()
    per_program = defaultdict(dict)   # program -> member -> evaluations per epoch
    for ens in ensembles_of(options):
        before = set(log)
        run_ensemble(ens)
        for key in set(log) - before:
            per_program[PROGRAMS[ens.family]][key] = log[key]
        print(f"  {ens.family:12s} {dict(ens.config)}", file=sys.stderr, flush=True)
    print(f"\n{args.section}, {args.epochs} epochs, seed 0: ticks a program needs (host engine's evaluations)")
    print(f"{'program':>20} {'members':>8} {'evals/member/step':>18} {'max':>5} {'lockstep ticks':>15} "
          f"{'decoupled ticks':>16}")
    for program, members in per_program.items():
        if program.startswith("nets"):
            segments = [(0, args.epochs)]
        else:
            segments = kan_segments(args.epochs, len(KAN_GRIDS), program.startswith("pruned"))
        lock, free = ticks(members, segments)
        e = [n for v in members.values() for n in v]
        print(f"{program:>20} {len(members):>8} {sum(e) / len(e):>18.1f} {max(e):>5} {lock:>15} {free:>16}")
    print("\naten operations per tick (one step of one ensemble; ~ CUDA kernel launches)")
    seen = set()
    for ens in ensembles_of(options):
        if ens.family in seen:
            continue
        seen.add(ens.family)
        host, resident = ops_per_tick(ens)
        print(f"  {ens.family} {dict(ens.config)} x{len(ens.tasks)}: host engine {host:.0f}, resident engine {resident}")


if __name__ == "__main__":
    main()
