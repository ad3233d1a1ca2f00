"""Table: each family's selected configuration per dataset, its dense error and the spread over seeds.

CSV holds the numbers (median, spread bounds, seeds, diverged seeds); Markdown and LaTeX show them
for reading, with the selection rule in the caption (``table_writers``).
"""
from utils.analysis.stats import IQR_FROM, best_per_dataset, seed_count, selection_rule
from visualization.style import NAMES, families, is_pde
from visualization.table_writers import fmt, latex, latex_escape, markdown, write  # noqa: F401 (tests import them)

REQUIRED_COLUMNS = {"dataset_idx", "dataset_name", "epoch", "dense_mse", "num_params"}
COLUMNS = [("dataset", "dataset"), ("family", "family"), ("mode", "mode"), ("config", "configuration"),
           ("num_params", "parameters"), ("dense_mse", "dense MSE"), ("dense_max_err", "max error"),
           ("dense_rel_l2", "rel. L2"), ("h1_error", "H1 error")]


def spread_cell(lo, hi, kind) -> str:
    return f"{fmt(lo)} to {fmt(hi)} ({kind})" if kind else ""


def table(results):
    """(the numbers for the CSV, the table shown, its headers)."""
    t = best_per_dataset({f: results[f] for f in families(results)})
    t["family"] = t["family"].map(NAMES)
    cols = [(c, h) for c, h in COLUMNS if c in t.columns]
    shown = t[[c for c, _ in cols]].copy()
    headers = [h for _, h in cols]
    if seed_count(results) > 1:
        at = shown.columns.get_loc("dense_mse")
        shown.insert(at + 1, "spread", [spread_cell(*v) for v in zip(t["dense_mse_lo"], t["dense_mse_hi"],
                                                                        t["spread"])])
        shown.insert(at + 2, "diverged", [f"{d}/{n}" for d, n in zip(t["diverged"], t["seeds"])])
        headers[at] = "dense MSE (median)"
        headers[at + 1:at + 1] = ["spread", "diverged seeds"]
        shown["num_params"] = shown["num_params"].map(lambda v: f"{v:g}")  # a median may be x.5
    data = t.drop(columns=["dataset_idx"]).rename(columns={"num_params": "num_params_median"}
                                                  if seed_count(results) > 1 else {})
    return data, shown, headers


def caption(section, results, what, spread=True):
    """The caption every table of a run carries: what it shows, the selection rule, the seeds."""
    frames = {f: results[f] for f in families(results)}
    n = seed_count(results)
    seeds = ""
    if n > 1:
        seeds = (f" Medians over {n} seeds; spread: the interquartile range, min-max below {IQR_FROM} finished "
                 f"seeds; diverged: seeds whose selected model ended in NaN." if spread else f" {n} seeds.")
    pde = " Dense MSE is the L2 error against the exact solution u." if is_pde(section) else ""
    dtype = next((df.attrs.get("dtype") for df in frames.values() if df.attrs.get("dtype")), None)
    trained = f" Every family trained in {dtype}." if dtype else ""
    return f"{section}: {what}. {selection_rule(frames)}{seeds}{pde}{trained}"


def wall_time_note(results) -> str:
    """What a row's ``wall_time`` measures, by the engines that trained the run (attrs ``engine``;
    older runs: the host engine's)."""
    engines = {results[f].attrs.get("engine") or "host" for f in families(results)}
    notes = []
    if "host" in engines:
        notes.append("a model trained in an ensemble (its family and configuration, all datasets and seeds) is "
                     "charged its ensemble's time per step")
    if "resident" in engines:
        notes.append("under the GPU's resident engine, the ticks the model's own steps took times its "
                     "program's time per tick")
    return f" Wall time: training only, metrics excluded; {'; '.join(notes)} ({engine_label(results)})."


def engine_label(results) -> str:
    by = {}
    for f in families(results):
        attrs = results[f].attrs
        by.setdefault(f"{attrs.get('engine') or 'host'} engine on {attrs.get('device') or 'an unrecorded device'}",
                      []).append(NAMES[f])
    return "; ".join(f"{', '.join(fams)}: {how}" for how, fams in by.items())


def draw(section, results, models, out_dir):
    data, shown, headers = table(results)
    return write(out_dir, "best_per_dataset", data, shown, headers,
                 caption(section, results, "dense error of each family's selected configuration per dataset"))

