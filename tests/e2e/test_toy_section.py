"""A new section is one registry entry: a toy 1D Poisson problem, registered here and nowhere else,
trains through the command line, the sweep and the storage contract, and gets every figure and table
that applies to a 1D equation (issue 21: adding a section is shown, not claimed)."""
import math

import pytest
import torch
from run_builders import no_rendering  # noqa: F401 (a fixture)

from utils import load_run
from utils.analysis.stats import stage_ends
from utils.config import N_DENSE_1D
from utils.families import model_key
from utils.pipeline import cli
from utils.problems.poisson import PoissonPDE
from utils.sections import SECTIONS, Section
from visualization.__main__ import main as visualize

# u = sin(3 pi x) on (0, 1), -u'' = 9 pi^2 sin(3 pi x): another solution than section 1.2's
TOY = Section("toy_poisson", "A toy 1D Poisson problem.",
              {"poisson_1d_sin3": PoissonPDE(((0.0, 1.0),), lambda p: (3 * math.pi * p[:, :1]).sin(),
                                             lambda p: 9 * math.pi ** 2 * (3 * math.pi * p[:, :1]).sin())},
              ("poisson_1d_sin3",), kind="poisson", dim=1)
FIGURES = ["fits", "curves_epoch", "curves_walltime", "pareto", "grid_extension_steps", "grid_extension_G",
           "pde_training_steps", "pde_training_params"]
TABLES = ["best_per_dataset", "head_to_head", "efficiency", "time_to_accuracy"]


def test_a_registered_section_runs_end_to_end(tmp_path, monkeypatch, capsys, no_rendering):  # noqa: F811
    monkeypatch.setitem(SECTIONS, TOY.name, TOY)
    results_dir = tmp_path / "results"
    # the registry entry lives in this process: one worker (the sweep runs here)
    ts = cli.main("toy_poisson", ["--quick", "--epochs", "3", "--workers", "1", "--no-progress",
                                  "--results-dir", str(results_dir)])
    assert "Best dense MSE per dataset and family" in capsys.readouterr().out
    results, meta, models = load_run("toy_poisson", ts, results_dir=results_dir, load_models=True)
    assert set(results) == {"mlp", "siren", "kan", "kan_pruning"} and meta["section"] == "toy_poisson"
    for df in results.values():
        assert set(df["dataset_name"]) == {"poisson_1d_sin3"} and set(df["mode"]) == {"pinn"}
        assert df["dense_mse"].notna().all() and df["h1_error"].notna().all()
    # errors are measured against the toy's exact solution: a saved model reproduces its row's error
    # against sin(3 pi x), written out here, on the dense grid
    row = stage_ends(results["mlp"], "mlp").iloc[0]
    model = models["mlp"]["poisson_1d_sin3"][model_key("mlp", row)]
    x = torch.linspace(0, 1, N_DENSE_1D, dtype=torch.float64)[:, None]
    with torch.no_grad():
        error = ((model(x) - torch.sin(3 * math.pi * x)) ** 2).mean().item()
    assert error == pytest.approx(row["dense_mse"], rel=1e-9)
    out = tmp_path / "figures"
    assert visualize(["toy_poisson", "--results-dir", str(results_dir), "--out", str(out)]) == 0
    written = {p.stem for p in out.iterdir()}
    assert written == set(FIGURES) | set(TABLES)
    assert "skipped" not in capsys.readouterr().err
