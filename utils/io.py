"""The run-storage contract: one pickle per model type, metadata in ``df.attrs``.

A run of a section is ``<section>_<TIMESTAMP>_<model_type>.pkl`` for each model type, plus
``<section>_<TIMESTAMP>_models.pt`` when trained models are passed. Only metadata that the data
cannot answer is stored (see ``ESSENTIAL_KEYS``); depths, grids, activations, frequencies and the
number of datasets are always derived from the DataFrames, so they can never disagree with them.
Legacy runs (pickles without attrs plus ``<section>_<TIMESTAMP>_meta.json``) load transparently.

Pickles execute code when loaded: only load runs you trust.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

import pandas as pd

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"

# What df.attrs holds, and nothing else. `seed` is optional; the others are required.
ESSENTIAL_KEYS = ("section", "timestamp", "epochs", "device", "model_type", "seed")
REQUIRED_META = ("epochs", "device")

# Keys an earlier pipeline stored that the data answers; refused with the place to derive them.
DERIVABLE_KEYS = {
    "depths": "mlp_df['depth'].unique()",
    "activations": "mlp_df['activation'].unique()",
    "grids": "kan_df['grid_size'].unique()",
    "frequencies": "the dataset names sin_freq1..sin_freq5 (df['dataset_name'])",
    "num_datasets": "df['dataset_idx'].nunique()",
}

_TS = r"\d{8}_\d{6}(?:_\d+)?"  # 20251022_203715, or 20251022_203715_1 for a second run that second
_NAME = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
_MODELS_SUFFIX = "_models.pt"


class RunError(Exception):
    """A user-facing storage problem; its message is one line naming the path involved."""


def _results_dir(results_dir) -> Path:
    return Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR


def _run_file_re(section: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(section)}_({_TS})_({_NAME})\.pkl$")


def _ts_key(ts: str):
    """Sort key: timestamp, then the same-second counter."""
    base, _, n = ts[:15], ts[15:16], ts[16:]
    return (base, int(n) if n else 0)


# ----------------------------------------------------------------------------- saving

def _check_meta(meta: dict) -> None:
    for key in meta:
        if key in DERIVABLE_KEYS:
            raise RunError(f"save_run: '{key}' is derivable from the data, do not store it; "
                           f"use {DERIVABLE_KEYS[key]}")
        if key not in ESSENTIAL_KEYS or key in ("section", "timestamp", "model_type"):
            allowed = ", ".join(k for k in ESSENTIAL_KEYS if k not in ("section", "timestamp", "model_type"))
            raise RunError(f"save_run: unknown metadata key '{key}'; allowed: {allowed}")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise RunError(f"save_run: missing required metadata: {', '.join(missing)}")


def _claim_timestamp(out: Path, section: str) -> tuple[str, Path]:
    """Reserve a timestamp no other run uses, even one started in the same second.

    The claim is an exclusive lock file; a timestamp is taken only if no file of that run exists.
    The lock is removed once the run is complete on disk.
    """
    base = time.strftime("%Y%m%d_%H%M%S")
    for n in range(10_000):
        ts = base if n == 0 else f"{base}_{n}"
        lock = out / f".{section}_{ts}.lock"
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        if any(out.glob(f"{section}_{ts}_*")):
            lock.unlink()
            continue
        return ts, lock
    raise RunError(f"save_run: could not claim a timestamp under {out}")


def _write_tmp(out: Path, writer) -> Path:
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp_", suffix=".part")
    os.close(fd)
    try:
        writer(tmp)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def save_run(results: dict, section: str, models=None, results_dir=None, **meta) -> str:
    """Save one run; return its timestamp.

    ``results`` maps model type (mlp, siren, kan, kan_pruning) to its DataFrame. ``meta`` is the
    essential metadata (epochs, device, and seed when known). Every file is written to a temporary
    name first and renamed only when all are written, so a crash leaves no partial run behind.
    """
    if not re.fullmatch(_NAME, section):
        raise RunError(f"save_run: invalid section name '{section}'")
    _check_meta(meta)
    if not results:
        raise RunError("save_run: no results to save")
    for model_type, df in results.items():
        if not re.fullmatch(_NAME, model_type) or model_type == "models":
            raise RunError(f"save_run: invalid model type '{model_type}'")
        if not isinstance(df, pd.DataFrame):
            raise RunError(f"save_run: results['{model_type}'] is a {type(df).__name__}, not a DataFrame")

    out = _results_dir(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    ts, lock = _claim_timestamp(out, section)
    staged: list[tuple[Path, Path]] = []
    try:
        if models:
            from utils.models import to_spec  # torch/pykan only when models are saved
            import torch
            specs = to_spec(models)
            staged.append((_write_tmp(out, lambda p: torch.save(specs, p)),
                           out / f"{section}_{ts}{_MODELS_SUFFIX}"))
        for model_type, df in results.items():
            df = df.copy()
            df.attrs = {"section": section, "timestamp": ts, **meta, "model_type": model_type}
            staged.append((_write_tmp(out, df.to_pickle), out / f"{section}_{ts}_{model_type}.pkl"))
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        lock.unlink(missing_ok=True)
    return ts


# ----------------------------------------------------------------------------- loading

def list_runs(section: str, results_dir=None) -> list[str]:
    """Timestamps of the section's runs on disk, oldest first."""
    out = _results_dir(results_dir)
    if not out.is_dir():
        return []
    pat = _run_file_re(section)
    stamps = {m.group(1) for p in out.iterdir() if (m := pat.match(p.name))}
    return sorted(stamps, key=_ts_key)


def list_sections(results_dir=None) -> list[str]:
    out = _results_dir(results_dir)
    if not out.is_dir():
        return []
    pat = re.compile(rf"^(.+?)_{_TS}_{_NAME}\.pkl$")
    return sorted({m.group(1) for p in out.iterdir() if (m := pat.match(p.name))})


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_pickle(path)
    except Exception as e:  # truncated or corrupted files raise many different errors
        raise RunError(f"{path}: cannot be read, truncated or corrupted pickle "
                       f"({type(e).__name__})") from None
    if not isinstance(df, pd.DataFrame):
        raise RunError(f"{path}: holds a {type(df).__name__}, not a DataFrame")
    return df


def _read_legacy_meta(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: unreadable legacy metadata ({type(e).__name__})") from None
    raw = raw.get("meta", raw) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise RunError(f"{path}: legacy metadata is not a JSON object")
    return raw


def load_run(section: str, timestamp: str | None = None, results_dir=None, load_models: bool = False):
    """Load a run: ``(results, meta)``, or ``(results, meta, models)`` with ``load_models=True``.

    No timestamp means the latest run. ``meta`` is the essential metadata, taken from ``df.attrs``
    or, for a legacy run, from its ``_meta.json`` (which then also fills the DataFrames' attrs).
    """
    out = _results_dir(results_dir)
    runs = list_runs(section, out)
    if not runs:
        sections = list_sections(out)
        have = f"sections with runs: {', '.join(sections)}" if sections else "no runs at all"
        raise RunError(f"no runs of section '{section}' in {out} ({have})")
    if timestamp is None:
        timestamp = runs[-1]
    elif timestamp not in runs:
        raise RunError(f"no run {section}_{timestamp} in {out} (runs: {', '.join(runs)})")

    pat = _run_file_re(section)
    paths = sorted(p for p in out.iterdir() if (m := pat.match(p.name)) and m.group(1) == timestamp)
    results = {}
    for p in paths:
        model_type = pat.match(p.name).group(2)
        results[model_type] = _read_frame(p)

    legacy = out / f"{section}_{timestamp}_meta.json"
    meta = None
    for model_type, df in results.items():
        path = out / f"{section}_{timestamp}_{model_type}.pkl"
        if not df.attrs:
            if not legacy.exists():
                raise RunError(f"{path}: no metadata in df.attrs and no legacy {legacy.name}")
            raw = _read_legacy_meta(legacy)
            df.attrs = {k: raw[k] for k in ESSENTIAL_KEYS if k in raw}
            df.attrs.update(section=section, timestamp=timestamp, model_type=model_type)
        run_meta = {k: v for k, v in df.attrs.items() if k != "model_type"}
        if meta is None:
            meta = run_meta
        elif run_meta != meta:
            diff = sorted(k for k in set(meta) | set(run_meta) if meta.get(k) != run_meta.get(k))
            raise RunError(f"{path}: metadata disagrees with the other files of the run on {', '.join(diff)}")
        if df.attrs.get("model_type") != model_type:
            raise RunError(f"{path}: attrs say model_type={df.attrs.get('model_type')!r}")

    if not load_models:
        return results, meta
    models_path = out / f"{section}_{timestamp}{_MODELS_SUFFIX}"
    if not models_path.exists():
        raise RunError(f"{models_path}: this run saved no models")
    from utils.models import from_spec
    import torch
    try:
        specs = torch.load(models_path, weights_only=True)
    except Exception as e:
        raise RunError(f"{models_path}: cannot be read, truncated or corrupted ({type(e).__name__})") from None
    return results, meta, from_spec(specs)
