"""python -m visualization end to end, from --quick runs of each section (issue 5)."""
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from run_builders import no_rendering  # noqa: F401 (a fixture)
from visualization.tables import latex, latex_escape, markdown

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "section1_1": ["fits", "curves_epoch", "curves_walltime", "pareto", "grid_extension_steps", "grid_extension_G"],
    "section1_2": ["fits", "curves_epoch", "curves_walltime", "pareto", "grid_extension_steps", "grid_extension_G",
                   "pde_training_steps", "pde_training_params"],
    "section1_3": ["fields_poisson_2d_sin", "fields_poisson_2d_spec", "curves_epoch", "curves_walltime", "pareto",
                   "grid_extension_steps", "grid_extension_G", "pde_training_steps", "pde_training_params"],
}


def python(*args, cwd=None):
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One --quick run of each section (1.3 with fewer epochs, families and datasets to stay fast)."""
    res = tmp_path_factory.mktemp("results")
    extra = {"section1_3": ["--epochs", "3"]}
    for section in EXPECTED:
        proc = python(str(ROOT / f"{section}.py"), "--quick", "--no-progress", "--results-dir", str(res),
                      *extra.get(section, []))
        assert proc.returncode == 0, proc.stderr[-2000:]
    return res


def not_blank(path):
    img = mpimg.imread(path)
    rgb = img[..., :3]
    return rgb.std() > 0.02 and (rgb < 0.9).mean() > 0.01  # varied, and not (almost) all white


@pytest.mark.parametrize("section", list(EXPECTED))
def test_entry_point_writes_every_figure_and_table(runs, section, tmp_path):
    out = tmp_path / "figs"
    proc = python("-m", "visualization", section, "--results-dir", str(runs), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in EXPECTED[section]:
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path
            assert str(path) in proc.stdout
        assert not_blank(out / f"{name}.png"), name
    for ext in ("csv", "md", "tex"):
        assert (out / f"best_per_dataset.{ext}").stat().st_size > 100


def test_missing_family_is_drawn_with_a_note(tmp_path, monkeypatch):
    res = tmp_path / "r"
    proc = python(str(ROOT / "section1_1.py"), "--quick", "--no-progress", "--models", "mlp", "siren",
                  "--datasets", "sin_freq1", "--epochs", "2", "--results-dir", str(res))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = python("-m", "visualization", "section1_1", "--results-dir", str(res), "--out", str(tmp_path / "f"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not_blank(tmp_path / "f" / "fits.png") and not (tmp_path / "f" / "grid_extension_G.png").exists()
    # the note is on the figure itself
    from utils import load_run
    from visualization import curves, curves_walltime, fits
    results, _, models = load_run("section1_1", results_dir=res, load_models=True)
    texts = []
    capture = lambda fig, out_dir, name: texts.extend(t.get_text() for t in fig.texts) or []
    for module in (fits, curves):  # curves_walltime draws with curves' save
        monkeypatch.setattr(module, "save", capture)
    for module in (fits, curves, curves_walltime):
        module.draw("section1_1", results, models, tmp_path)
    assert texts.count("not in this run: KAN, pruned KAN") == 3  # fits + two curve figures


def test_no_runs_is_a_one_line_error(tmp_path):
    proc = python("-m", "visualization", "section1_2", "--results-dir", str(tmp_path))
    assert proc.returncode == 2 and str(tmp_path) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = python("-m", "visualization", "section7", "--results-dir", str(tmp_path))
    assert proc.returncode == 2 and "unknown section" in proc.stderr


def test_latex_escapes_names():
    assert latex_escape("poisson_1d_sin & 50%") == r"poisson\_1d\_sin \& 50\%"
    import pandas as pd
    t = pd.DataFrame({"dataset": ["sin_freq1"], "dense MSE": [1.5e-7]})
    tex = latex(t, ["dataset", "dense MSE"], "best_per_dataset")
    assert r"sin\_freq1 & 1.50e-07 \\" in tex and r"\caption{best\_per\_dataset}" in tex
    assert tex.count(r"\begin{tabular}{lr}") == 1 and tex.count(r"\end{tabular}") == 1
    assert markdown(t, ["dataset", "dense MSE"]).splitlines()[2] == "| sin_freq1 | 1.50e-07 |"


# ----------------------------------------------------------------------------- what a figure needs (issue 14)

def _saved_run(tmp_path):
    from run_builders import current_frames
    from utils import save_run
    return save_run(current_frames(), "section1_1", results_dir=tmp_path, epochs=6, device="cpu", seed=0)


def test_bad_models_file_costs_only_the_figures_drawing_models(tmp_path, capsys, no_rendering):
    from visualization.__main__ import main
    ts = _saved_run(tmp_path)
    models = tmp_path / f"section1_1_{ts}_models.pt"
    models.write_bytes(b"PK\x03\x04 not a zip")
    assert main(["section1_1", "--results-dir", str(tmp_path), "--out", str(tmp_path / "f")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"visualization: skipped fits: needs the run's models ({models}: cannot be read, truncated or corrupted "
        f"(RuntimeError))"]
    drawn = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert len(drawn) == 13 and "fits.png" not in drawn and "curves_walltime.png" in drawn
    assert "13 files" in captured.out and "(1 skipped)" in captured.out


def test_a_figure_failing_on_the_data_is_skipped_and_leaves_nothing(tmp_path, capsys, monkeypatch, no_rendering):
    from visualization import pareto
    from visualization.__main__ import main
    _saved_run(tmp_path)
    real = pareto.draw

    def fails_half_way(section, results, models, out_dir):
        real(section, results, models, out_dir)  # its files are written, then it meets what it cannot use
        raise KeyError("num_params")
    monkeypatch.setattr(pareto, "draw", fails_half_way)
    out = tmp_path / "f"
    assert main(["section1_1", "--results-dir", str(tmp_path), "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "pareto" in line]
    assert lines == ["visualization: skipped pareto: KeyError 'num_params' (the run lacks something it needs)"]
    assert not list(out.glob("pareto*")) and (out / "grid_extension_G.png").exists()


def test_out_must_be_a_writable_folder(tmp_path, capsys):
    from visualization.__main__ import main
    _saved_run(tmp_path)
    a_file = tmp_path / "figs.png"
    a_file.write_bytes(b"x")
    before = sorted(tmp_path.iterdir())
    for out, says in [(a_file, "is a file, not a folder"), (a_file / "sub", "is a file, not a folder")]:
        assert main(["section1_1", "--results-dir", str(tmp_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"visualization: error: --out {out}: ") and says in err
    assert sorted(tmp_path.iterdir()) == before  # nothing drawn, nothing created


def test_out_not_writable(tmp_path, capsys):
    from visualization.__main__ import main
    _saved_run(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere a mode forbids: use a read-only mount if one can be made
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)],
                          capture_output=True).returncode != 0:
            pytest.skip("running as root and cannot mount a read-only tmpfs")
    else:
        locked.chmod(0o500)
    try:
        assert main(["section1_1", "--results-dir", str(tmp_path), "--out", str(locked / "figs")]) == 2
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(locked)], capture_output=True)
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not writable" in err and "Traceback" not in err


def test_an_unfinished_run_says_how_to_resume(tmp_path, capsys):
    from utils.io import start_run
    from visualization.__main__ import main
    _saved_run(tmp_path)
    ts = start_run("section1_1", results_dir=tmp_path, options={"epochs": 6})
    assert main(["section1_1", "--results-dir", str(tmp_path), "--timestamp", ts]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unfinished" in err and f"python section1_1.py --resume {ts}" in err
