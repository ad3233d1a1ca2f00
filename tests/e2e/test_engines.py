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
