"""Where a sweep's time goes: the ensembles of a section (one per family by default), trained for a
few epochs under cProfile; prints each ensemble's wall time and the functions that took the most.

On a GPU the sweep is bound by kernel launches and host syncs, so the call counts of torch's
functions (``ncalls``) say as much as the times. Takes the section's own options, e.g.

    python bench/profile_ensembles.py section1_3 --device cuda --epochs 3
    python bench/profile_ensembles.py section1_1 --device cpu --epochs 5 --all
"""
import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from utils.pipeline import cli  # noqa: E402
from utils.pipeline.run import ensembles_of  # noqa: E402
from utils.pipeline.sweep import run_ensemble  # noqa: E402
from utils.sections import SECTIONS  # noqa: E402


def section_plan(name, argv):
    """The run's options, from the section's own command line (as the section script would take them)."""
    section = SECTIONS[name]
    args = cli.build_parser(section).parse_args(argv)
    return cli.plan(section.name + ".py", section, args)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("section", choices=list(SECTIONS))
    p.add_argument("--all", action="store_true", help="every ensemble, not only the first of each family")
    p.add_argument("--top", type=int, default=25)
    ours, rest = p.parse_known_args()
    options = section_plan(ours.section, rest)
    ensembles = ensembles_of(options)
    if not ours.all:
        ensembles = [e for i, e in enumerate(ensembles) if e.family not in {f.family for f in ensembles[:i]}]
    device = options["device"]
    run_ensemble(ensembles[0].__class__(ensembles[0].tasks[:1]))  # warm-up: imports, CUDA context, kernels
    prof = cProfile.Profile()
    for ens in ensembles:
        t0 = time.perf_counter()
        prof.enable()
        run_ensemble(ens)
        if device == "cuda":
            torch.cuda.synchronize()
        prof.disable()
        print(f"{ens.family:12s} {dict(ens.config)} x{len(ens.tasks)} members, {options['epochs']} epochs: "
              f"{time.perf_counter() - t0:.2f} s", flush=True)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(ours.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
