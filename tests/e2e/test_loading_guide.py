"""The code examples of visualization/loading_guide.md run as written against a saved run (the shared
section 1.1 run; the guide's toy example with 2 steps per grid instead of the paper's 200)."""
import re

from scripts import ROOT

from utils import io as run_io


def test_every_example_runs(shared_run, monkeypatch, capsys):
    monkeypatch.setattr(run_io, "DEFAULT_RESULTS_DIR", shared_run("section1_1")[0])
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "visualization" / "loading_guide.md").read_text(), re.S)
    assert len(blocks) >= 6
    namespace = {}
    for block in blocks:
        block = block.replace("steps_per_grid = 200 ", "steps_per_grid = 2 ")
        exec(compile(block, "loading_guide.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "[2, 3] ['relu', 'silu', 'tanh'] [3, 5, 10] 3 [1, 2]" in out.replace("np.int64(", "").replace(")", "")
    assert namespace["paths"] and all(p.exists() for p in namespace["paths"])
    # the toy example ran both, on every grid of the schedule
    for dtype in ("float64", "float32"):
        assert set(namespace["pipeline_rmse"][dtype].index) == set(namespace["pykan_rmse"]) == {3, 5, 10, 20, 50}
    assert namespace["df"]["grid_size"].tolist()[::2] == [3, 5, 10, 20, 50]
