"""The device-resident engine (--engine resident) trains the same models as the host engine: on the
CPU, in float64, every row of a --quick section is the host engine's, bit for bit (issue 23).

The resident engine is the GPU's (no host reads inside a tick, replayable as CUDA graphs); on the
CPU it follows the compiled directions' arithmetic, so the CPU proves it without a GPU. The
reference runs are the session's shared host runs.
"""
import pandas as pd
import pytest

from scripts import SHARED, section
from utils import load_run


@pytest.mark.parametrize("name", ["section1_1", "section1_3"])
def test_resident_engine_gives_the_host_engines_rows(shared_run, tmp_path, name):
    proc = section(name, *SHARED[name], "--engine", "resident", "--device", "cpu", "--no-progress",
                   "--results-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resident, _ = load_run(name, results_dir=tmp_path)
    host, _ = load_run(name, results_dir=shared_run(name)[0])
    assert set(resident) == set(host) == {"mlp", "siren", "kan", "kan_pruning"}
    for family in host:
        pd.testing.assert_frame_equal(resident[family].drop(columns="wall_time"),
                                      host[family].drop(columns="wall_time"), check_exact=True)
        # a member's wall time is its own ticks' (members step on their own), cumulative per model
        assert (resident[family]["wall_time"] > 0).all()


@pytest.mark.parametrize("name", ["section1_1", "section1_2"])
def test_merged_net_program_gives_each_ensembles_rows(monkeypatch, name):
    """The GPU trains a section's MLPs and SIRENs as one program (``training.train_merged_nets``);
    on the CPU (merging allowed there for this test) its rows are the resident engine's per-ensemble
    rows bit for bit, but for one case: a PINN's depth-2 tanh MLP, whose parameter gradient sums its
    points in another order (~1e-17, utils/engine/merged_nets.py): L-BFGS carries that to ~2e-9 in
    two epochs and ~1e-4 in four, so it is held to its first epoch, to rounding (1e-9). A merged
    member's rows are the same, bit for bit, whichever configurations it is merged with."""
    from utils.engine import training
    from utils.pipeline.run import train
    from utils.sections import SECTIONS
    section = SECTIONS[name]
    options = {"section": name, "datasets": section.datasets[:2], "families": ["mlp", "siren"], "seeds": [0, 1],
               "epochs": 4, "device": "cpu", "quick": True, "engine": "resident",
               "problem_options": (("mode", "pinn"), ("alpha", 0.01), ("n_interior", 200), ("n_boundary", 2))
               if section.is_pde else ()}
    alone, alone_models = train(options)
    monkeypatch.setattr(training, "MERGED_DEVICES", ("cpu", "cuda"))
    merged, merged_models = train(options)
    for family in ("mlp", "siren"):
        a, m = alone[family].drop(columns="wall_time"), merged[family].drop(columns="wall_time")
        inexact = (a["depth"] == 2) & (a.get("activation") == "tanh") if section.is_pde else a["depth"] < 0
        pd.testing.assert_frame_equal(m[~inexact], a[~inexact], check_exact=True)
        early = inexact & (a["epoch"] == 1)
        pd.testing.assert_frame_equal(m[early], a[early], check_exact=False, rtol=1e-9, atol=0)
        assert (merged[family]["wall_time"] > 0).all()
        assert merged_models[family].keys() == alone_models[family].keys()
    # and a member's numbers never depend on its companions: the MLPs merged without the SIRENs
    mlps, _ = train({**options, "families": ["mlp"]})
    pd.testing.assert_frame_equal(mlps["mlp"].drop(columns="wall_time"), merged["mlp"].drop(columns="wall_time"),
                                  check_exact=True)
