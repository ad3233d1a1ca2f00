"""Which files on disk make up which run, in every layout this pipeline has written; reading them.

Layouts a run of ``<section>`` with timestamp ``<TS>`` can have in the results folder:

- ``<section>_<TS>_<model_type>.pkl`` per model type, metadata in ``df.attrs``, and
  ``<section>_<TS>_models.pt`` (written by ``utils.io``);
- the same pickles without attrs plus ``<section>_<TS>_meta.json`` (``{"meta": {...}}`` or flat);
- ``<section>_<TS>_e<EPOCHS>_<model_type>.pkl``: an earlier pipeline put the epochs in the name;
- ``<section>_<TS>.pkl`` holding ``{model_type: DataFrame}`` plus ``<section>_<TS>.json`` with
  ``{"results": ..., "meta": {...}}`` (a single-file run);
- ``<section>_<TS>.partial/``: the finished units of work of an unfinished run (``utils.io.start_run``).

Model types are known names, so ``kan`` never matches ``kan_pruning`` and a sidecar such as an
earlier pipeline's ``<section>_<TS>_checkpoint_metadata.pkl`` (or its parquet copies and pykan
checkpoints) is never taken for a DataFrame: such files are ignored with a one-line note when the
run is loaded, and a timestamp that has nothing else is not a run (it never becomes "latest").

Older DataFrames are repaired once, when loaded (``repair``), so that the statistics and the figures
see one shape of DataFrame: missing essential metadata is filled with None (the epochs from the file
name when no metadata has them), columns of 0-d numpy arrays (pykan's losses) become plain numbers,
and a run saved before several seeds existed gets its ``seed`` column (its attrs' seed, 0 where unknown).
"""
from __future__ import annotations

import json
import numbers
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from utils.config import TIMESTAMP
from utils.families import FAMILY_ORDER

# The model types a run stores, in the order they are returned: the families.
MODEL_TYPES = FAMILY_ORDER
# What df.attrs holds, and nothing else. `seed` and `dtype` (the training precision) are optional
# when saving; the others are required.
ESSENTIAL_KEYS = ("section", "timestamp", "epochs", "device", "model_type", "seed", "dtype", "engine")
PER_FAMILY_KEYS = ("device", "engine")   # may differ between a run's families (--device auto splits a run)
TS = TIMESTAMP

_TYPES = "|".join(MODEL_TYPES)
_FRAME = re.compile(rf"^(?:e(\d+)_)?({_TYPES})\.pkl$")
_KNOWN_SIDE_FILES = ("models.pt", "meta.json")  # read together with the run's DataFrames


class RunError(Exception):
    """A user-facing storage problem; its message is one line naming the path involved."""


@dataclass
class RunFiles:
    """The files of one timestamp of a section."""
    frames: dict = field(default_factory=dict)  # model type -> [(path, epochs in the name or None)]
    single: Path | None = None                  # <section>_<TS>.pkl
    partial: Path | None = None                 # <section>_<TS>.partial/
    other: list = field(default_factory=list)   # anything else named like the run

    @property
    def complete(self) -> bool:
        return bool(self.frames) or self.single is not None


def scan(out: Path, section: str) -> dict[str, RunFiles]:
    """{timestamp: its files} for every timestamp with a complete run or a partial folder."""
    if not out.is_dir():
        return {}
    name = re.compile(rf"^{re.escape(section)}_({TS})(?:_(.+)|\.([a-z]+))$")
    runs: dict[str, RunFiles] = {}
    for p in out.iterdir():
        m = name.match(p.name)
        if not m:
            continue
        ts, rest, ext = m.groups()
        run = runs.setdefault(ts, RunFiles())
        frame = _FRAME.match(rest) if rest else None
        if frame:
            run.frames.setdefault(frame.group(2), []).append((p, int(frame.group(1)) if frame.group(1) else None))
        elif ext == "partial" and p.is_dir():
            run.partial = p
        elif ext == "pkl":
            run.single = p
        elif ext != "json" and rest not in _KNOWN_SIDE_FILES:
            run.other.append(p)
    return {ts: r for ts, r in runs.items() if r.complete or r.partial}


def sections(out: Path) -> list[str]:
    """Sections with at least one complete run in ``out``."""
    if not out.is_dir():
        return []
    pat = re.compile(rf"^(.+?)_{TS}(?:_(?:e\d+_)?(?:{_TYPES}))?\.pkl$")
    return sorted({m.group(1) for p in out.iterdir() if (m := pat.match(p.name))})


# ----------------------------------------------------------------------------- reading

def read_frame(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_pickle(path)
    except Exception as e:  # truncated or corrupted files raise many different errors
        raise RunError(f"{path}: cannot be read, truncated or corrupted pickle "
                       f"({type(e).__name__})") from None
    if not isinstance(df, pd.DataFrame):
        raise RunError(f"{path}: holds a {type(df).__name__}, not a DataFrame")
    return df


def read_legacy_meta(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: unreadable legacy metadata ({type(e).__name__})") from None
    raw = raw.get("meta", raw) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise RunError(f"{path}: legacy metadata is not a JSON object")
    return raw


def _read_single(path: Path) -> tuple[dict, list]:
    """A single-file run's {model type: (df, path, None)} and the keys it ignores."""
    try:
        obj = pd.read_pickle(path)
    except Exception as e:
        raise RunError(f"{path}: cannot be read, truncated or corrupted pickle ({type(e).__name__})") from None
    expected = "a single-file run must hold a dict of DataFrames by model type"
    if not isinstance(obj, dict):
        raise RunError(f"{path}: unsupported format: {expected}, this holds a {type(obj).__name__}")
    for key in MODEL_TYPES:
        if key in obj and not isinstance(obj[key], pd.DataFrame):
            raise RunError(f"{path}: unsupported format: {expected}, its '{key}' is a {type(obj[key]).__name__}")
    frames = {key: (obj[key], path, None) for key in MODEL_TYPES if key in obj}
    if not frames:
        raise RunError(f"{path}: unsupported format: {expected}, its keys are {', '.join(map(str, obj)) or 'none'}")
    return frames, [str(k) for k in obj if k not in frames]


def _is_0d(v) -> bool:
    return getattr(v, "ndim", None) == 0 and hasattr(v, "item")


def coerce_scalars(df: pd.DataFrame) -> None:
    """Columns holding 0-d arrays (pykan's losses in older runs) become numeric columns, in place."""
    for col in df.columns[df.dtypes == object]:
        values = df[col].tolist()
        if not any(map(_is_0d, values)):
            continue
        items = [v.item() if _is_0d(v) else v for v in values]
        if all(x is None or isinstance(x, numbers.Number) for x in items):
            df[col] = pd.to_numeric(pd.Series(items, index=df.index, dtype=object))


def repair(df: pd.DataFrame) -> None:
    """An older DataFrame in the current shape, in place (see the module docstring)."""
    coerce_scalars(df)
    if "seed" not in df.columns:
        seed = df.attrs.get("seed")
        df["seed"] = 0 if seed is None else seed


def _note_ignored(section: str, ts: str, what: list[str]) -> None:
    shown = ", ".join(what[:3]) + (f" and {len(what) - 3} more" if len(what) > 3 else "")
    print(f"note: run {section} {ts}: ignoring {len(what)} file{'s' if len(what) != 1 else ''} or entries "
          f"that are not DataFrames of a model type: {shown}", file=sys.stderr)


def read(out: Path, section: str, ts: str, run: RunFiles) -> tuple[dict, dict]:
    """``(results, meta)`` of a complete run in any layout; attrs and meta hold every essential key."""
    if run.frames:
        frames = {}
        for model_type in MODEL_TYPES:
            entries = run.frames.get(model_type)
            if not entries:
                continue
            if len(entries) > 1:
                names = ", ".join(sorted(p.name for p, _ in entries))
                raise RunError(f"{out}: run {section} {ts} has {len(entries)} files for model type "
                               f"{model_type}: {names}")
            path, epochs = entries[0]
            frames[model_type] = (read_frame(path), path, epochs)
        ignored = [p.name for p in sorted(run.other + ([run.single] if run.single else []))]
        legacy_path = out / f"{section}_{ts}_meta.json"
    else:
        frames, keys = _read_single(run.single)
        ignored = [p.name for p in sorted(run.other)] + [f"{run.single.name}['{k}']" for k in keys]
        legacy_path = out / f"{section}_{ts}.json"
    if ignored:
        _note_ignored(section, ts, ignored)

    legacy = None
    results, meta = {}, None
    for model_type, (df, path, name_epochs) in frames.items():
        if df.attrs:
            attrs = dict(df.attrs)
        else:
            if legacy is None:
                legacy = read_legacy_meta(legacy_path) if legacy_path.exists() else {}
            attrs = {k: legacy[k] for k in ESSENTIAL_KEYS
                     if k in legacy and k not in ("section", "timestamp", "model_type")}
        if attrs.setdefault("model_type", model_type) != model_type:
            raise RunError(f"{path}: attrs say model_type={attrs['model_type']!r}")
        attrs.setdefault("section", section)
        attrs.setdefault("timestamp", ts)
        if attrs.get("epochs") is None and name_epochs is not None:
            attrs["epochs"] = name_epochs
        for key in ESSENTIAL_KEYS:
            attrs.setdefault(key, None)
        df.attrs = attrs
        repair(df)
        run_meta = {k: v for k, v in attrs.items() if k not in ("model_type", *PER_FAMILY_KEYS)}
        if meta is None:
            meta = run_meta
        elif run_meta != meta:
            diff = sorted(k for k in set(meta) | set(run_meta) if meta.get(k) != run_meta.get(k))
            raise RunError(f"{path}: metadata disagrees with the other files of the run on {', '.join(diff)}")
        results[model_type] = df
    # each family's own device and engine; meta's: theirs, joined where they differ ("cpu+cuda")
    for key in PER_FAMILY_KEYS:
        values = sorted({str(df.attrs[key]) for df in results.values()})
        meta[key] = results[next(iter(results))].attrs[key] if len(values) == 1 else "+".join(values)
    return results, meta
