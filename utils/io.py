"""The run-storage contract: one pickle per model type, metadata in ``df.attrs``.

A run of a section is ``<section>_<TIMESTAMP>_<model_type>.pkl`` for each model type, plus
``<section>_<TIMESTAMP>_models.pt`` when trained models are passed. Only metadata that the data
cannot answer is stored (see ``ESSENTIAL_KEYS``); depths, grids, activations, frequencies and the
number of datasets are always derived from the DataFrames, so they can never disagree with them.

Finished work is never lost: a checkpointed sweep claims its timestamp with ``start_run``, writes
every finished unit of work into ``<section>_<TIMESTAMP>.partial/`` with ``save_partial`` and turns
them into a complete run with ``finish_run``; ``load_partial`` reads them back for ``--resume``.
Every file is written under a hidden temporary name, fsynced and renamed, with the user's umask:
a kill or a full disk never leaves half a file under a run's name, and a failed write is a one-line
RunError naming the file and the cause. A temporary name carries its writer's process id and host,
so the next run in the folder removes what a killed writer left (``start_run``, ``hold_run``). A save
is never cut by Ctrl-C or SIGTERM: the signal takes effect once it is done. An unfinished run is held
by the process that trains it (``start_run``, ``hold_run``), so two resumes never train it twice.

Older runs load transparently (``utils.storage.layouts`` knows every layout): pickles without attrs
plus ``_meta.json``, ``<TS>_e<EPOCHS>_<model>.pkl`` names, single-file runs ``<section>_<TS>.pkl``
(+ ``.json``) and sidecars such as ``_checkpoint_metadata.pkl`` (ignored with a note).

Pickles execute code when loaded: only load runs you trust.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: runs are not held there
    fcntl = None

import pandas as pd

from utils import signals
from utils.config import DEFAULT_RESULTS_DIR
from utils.storage import layouts
from utils.storage.layouts import ESSENTIAL_KEYS, MODEL_TYPES, PER_FAMILY_KEYS, RunError

# ESSENTIAL_KEYS: what df.attrs holds, and nothing else; MODEL_TYPES: the DataFrames a run stores.
REQUIRED_META = ("epochs", "device")

# Keys an earlier pipeline stored that the data answers; refused with the place to derive them.
DERIVABLE_KEYS = {
    "depths": "mlp_df['depth'].unique()",
    "activations": "mlp_df['activation'].unique()",
    "grids": "kan_df['grid_size'].unique()",
    "frequencies": "the dataset names sin_freq1..sin_freq5 (df['dataset_name'])",
    "num_datasets": "df['dataset_idx'].nunique()",
}

_TS = layouts.TS
_NAME = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_MODELS_SUFFIX = "_models.pt"
_OPTIONS = "options.pickle"  # in the partial folder; never <key>.pkl, whatever the key
# The models file records the run's model types, so a deleted DataFrame pickle is noticed, and the
# run it belongs to, so that another run's models file (copied or renamed) is refused.
MODEL_TYPES_KEY = "__model_types__"
RUN_KEY = "__run__"
_LOCK = ".lock"  # in the partial folder: held (flock) by the process that trains the run
_HELD: dict = {}  # partial folder -> the open lock file by which this process holds it
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
# a temporary file or folder: .tmp_<final name>.<pid>@<host>.<token>[.part]
_TMP = re.compile(r"^\.tmp_.+\.(\d+)@([A-Za-z0-9-]+)\.[0-9a-f]{8}(?:\.part)?$")


def _results_dir(results_dir) -> Path:
    return Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR


def _ts_key(ts: str):
    """Sort key: timestamp, then the same-second counter."""
    base, n = ts[:15], ts[16:]
    return (base, int(n) if n else 0)


def _partial_dir(out: Path, section: str, ts: str) -> Path:
    return out / f"{section}_{ts}.partial"


# ----------------------------------------------------------------------------- writing files

def _write_error(path: Path, e: OSError) -> RunError:
    return RunError(f"could not write {path}: {e.strerror or e}")


def _tmp_name(name: str) -> str:
    return f".tmp_{name}.{os.getpid()}@{_HOST}.{secrets.token_hex(4)}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale(out: Path) -> None:
    """Remove the temporary files and folders that writers on this machine which no longer run (a
    SIGKILL during a save) left in ``out`` and its partial folders. Other machines' are theirs to judge."""
    for folder in [out, *(p for p in out.glob("*.partial") if p.is_dir())]:
        for p in folder.glob(".tmp_*"):
            m = _TMP.match(p.name)
            if not m or m.group(2) != _HOST or _alive(int(m.group(1))):
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done, then act as they would have: a save is made
    whole or not at all (torch.save would turn an interrupt into a RuntimeError on its way out).
    Saves take seconds at most; off the main thread Python cannot handle signals, nothing to defer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught, previous = [], {}
    for s in signals.STOPPING:
        if signal.getsignal(s) not in (signal.SIG_IGN, None):  # None: not Python's to handle
            previous[s] = signal.signal(s, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signals.restore(previous)
    if caught:
        signum, frame = caught[0]
        if previous[signum] == signal.SIG_DFL:
            signal.raise_signal(signum)
        else:
            previous[signum](signum, frame)


def _stage(final: Path, write, shown: Path | None = None) -> Path:
    """Write ``final``'s content with ``write(file)`` to a temporary file next to it; return its path.

    The file is created as open() creates files (mode 0666 less the umask, not mkstemp's 0600) and
    fsynced, so once renamed its content is on disk. On any failure the temporary file is removed;
    an OSError (full disk, permissions) becomes a one-line RunError naming ``final`` (or ``shown``,
    where the file will end up once its temporary folder is renamed).
    """
    shown = shown or final
    tmp = final.with_name(f"{_tmp_name(final.name)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise _write_error(shown, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(shown, e) from None
        raise
    return tmp


def _fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (some file systems cannot fsync a folder: then skip)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(folder: Path, staged: list[tuple[Path, Path]]) -> None:
    """Rename every staged (temporary, final) pair; on failure remove them all, renamed or not."""
    done = []
    try:
        for tmp, final in staged:
            os.replace(tmp, final)
            done.append(final)
    except OSError as e:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for path in done:
            path.unlink(missing_ok=True)
        raise _write_error(final, e) from None
    _fsync_dir(folder)


def _dump(obj, f) -> None:
    pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def _make_dir(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"could not create {out}: {e.strerror or e}") from None
    return out


# ----------------------------------------------------------------------------- saving

def _check_name(section: str, who: str) -> None:
    if not isinstance(section, str) or not re.fullmatch(_NAME, section):
        raise RunError(f"{who}: invalid section name {section!r}")


def _check_ts(ts: str, who: str) -> None:
    if not isinstance(ts, str) or not re.fullmatch(_TS, ts):
        raise RunError(f"{who}: invalid timestamp {ts!r} (expected like 20251022_203715)")


def _check_meta(meta: dict, who: str) -> None:
    for key in meta:
        if key in DERIVABLE_KEYS:
            raise RunError(f"{who}: '{key}' is derivable from the data, do not store it; "
                           f"use {DERIVABLE_KEYS[key]}")
        if key not in ESSENTIAL_KEYS or key in ("section", "timestamp", "model_type"):
            allowed = ", ".join(k for k in ESSENTIAL_KEYS if k not in ("section", "timestamp", "model_type"))
            raise RunError(f"{who}: unknown metadata key '{key}'; allowed: {allowed}")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise RunError(f"{who}: missing required metadata: {', '.join(missing)}")
    for key in PER_FAMILY_KEYS:
        if isinstance(meta.get(key), dict) and not all(isinstance(d, str) for d in meta[key].values()):
            raise RunError(f"{who}: {key} must be a name, or one per model type")


def _check_run(results: dict, models, meta: dict, who: str) -> None:
    """Everything that can be refused is refused before a single file is written."""
    _check_meta(meta, who)
    if not results:
        raise RunError(f"{who}: no results to save")
    for model_type, df in results.items():
        if model_type not in MODEL_TYPES:
            raise RunError(f"{who}: invalid model type {model_type!r} (one of {', '.join(MODEL_TYPES)})")
        if not isinstance(df, pd.DataFrame):
            raise RunError(f"{who}: results['{model_type}'] is a {type(df).__name__}, not a DataFrame")
    if models and not isinstance(models, dict):
        raise RunError(f"{who}: models must be a dict by family, got a {type(models).__name__}")


def _ts_taken(out: Path, section: str, ts: str) -> bool:
    return any(out.glob(f"{section}_{ts}_*")) or any(out.glob(f"{section}_{ts}.*"))


def _claim_timestamp(out: Path, section: str, who: str) -> tuple[str, Path]:
    """Reserve a timestamp no other run uses, even one started in the same second.

    The claim is an exclusive lock file; a timestamp is taken only if no file of that run (complete
    or partial) exists. The caller removes the lock once the run's first file is on disk.
    """
    base = time.strftime("%Y%m%d_%H%M%S")
    for n in range(10_000):
        ts = base if n == 0 else f"{base}_{n}"
        lock = out / f".{section}_{ts}.lock"
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        except OSError as e:
            raise _write_error(lock, e) from None
        if _ts_taken(out, section, ts):
            lock.unlink()
            continue
        return ts, lock
    raise RunError(f"{who}: could not claim a timestamp under {out}")


def _write_run(out: Path, section: str, ts: str, results: dict, models, meta: dict) -> None:
    """The writer of a complete run, shared by save_run and finish_run.

    Every file is staged first and renamed only when all are written, the models file first: a
    kill during the renames leaves a models file that names the DataFrames still missing, which
    load_run reports. A failure removes everything this call wrote.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        if models:
            import torch

            from utils.models.saving import to_spec  # torch/pykan only when models are saved
            specs = {MODEL_TYPES_KEY: list(results), RUN_KEY: {"section": section, "timestamp": ts},
                     **to_spec(models)}
            final = out / f"{section}_{ts}{_MODELS_SUFFIX}"
            staged.append((_stage(final, lambda f: torch.save(specs, f)), final))
        for model_type, df in results.items():
            df = df.copy()
            own = {k: meta[k][model_type] if isinstance(meta[k], dict) else meta[k] for k in PER_FAMILY_KEYS if k in meta}
            df.attrs = {"section": section, "timestamp": ts, **meta, **own, "model_type": model_type}
            final = out / f"{section}_{ts}_{model_type}.pkl"
            staged.append((_stage(final, df.to_pickle), final))
        _commit(out, staged)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise


def save_run(results: dict, section: str, models=None, results_dir=None, **meta) -> str:
    """Save one run; return its timestamp.

    ``results`` maps model type (mlp, siren, kan, kan_pruning) to its DataFrame. ``meta`` is the
    essential metadata (epochs, device, and seed, dtype and engine when known; device and engine
    may be one per model type). Every file is written to a temporary
    name first and renamed only when all are written, so a crash leaves no partial run behind; a
    failed write (full disk, permissions) raises a one-line RunError naming the file.
    """
    _check_name(section, "save_run")
    _check_run(results, models, meta, "save_run")
    out = _make_dir(_results_dir(results_dir))
    ts, lock = _claim_timestamp(out, section, "save_run")
    try:
        with _signals_deferred():
            _write_run(out, section, ts, results, models, meta)
    finally:
        lock.unlink(missing_ok=True)
    return ts


# ----------------------------------------------------------------------------- partial results

def start_run(section: str, results_dir=None, options=None) -> str:
    """Claim a timestamp and create the run's folder of partial results; return the timestamp.

    The claim is save_run's (an exclusive lock, so two runs never share a timestamp). The folder
    ``<results_dir>/<section>_<TS>.partial/`` is built under a temporary name with ``options`` (a
    picklable dict: the command's options, read back by ``--resume``) and renamed, so a partial
    folder always holds its options. This process holds the run (``hold_run``) until it finishes it.
    """
    _check_name(section, "start_run")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise RunError(f"start_run: options must be a dict, got a {type(options).__name__}")
    out = _make_dir(_results_dir(results_dir))
    _remove_stale(out)
    ts, lock = _claim_timestamp(out, section, "start_run")
    final = _partial_dir(out, section, ts)
    tmp = out / _tmp_name(final.name)
    try:
        try:
            tmp.mkdir()
            _hold(tmp / _LOCK, final, section, ts)
        except OSError as e:
            raise RunError(f"could not create {final}: {e.strerror or e}") from None
        path = tmp / _OPTIONS
        _commit(tmp, [(_stage(path, lambda f: _dump(options, f), shown=final / _OPTIONS), path)])
        try:
            os.rename(tmp, final)
        except OSError as e:
            raise RunError(f"could not create {final}: {e.strerror or e}") from None
        _fsync_dir(out)
    except BaseException:
        _release(final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.unlink(missing_ok=True)
    return ts


def _hold(lock: Path, folder: Path, section: str, ts: str) -> None:
    """Hold the run of the partial ``folder`` through its ``lock`` file: an exclusive flock, released
    when this process closes it or ends, however it ends (a SIGKILL too)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise RunError(f"run {section} {ts} is being trained by another process"
                       f"{f' ({holder})' if holder else ''}") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {_HOST}".encode())
    _HELD[os.path.abspath(folder)] = fd


def _release(folder: Path) -> None:
    fd = _HELD.pop(os.path.abspath(folder), None)
    if fd is not None:
        os.close(fd)


def hold_run(section: str, ts: str, results_dir=None) -> None:
    """Hold the unfinished run ``ts`` for this process (until ``finish_run``, or the process ends), or
    raise RunError if another process holds it: two resumes of one run would train it twice. Removes
    what killed writers left in the results folder first."""
    folder = _existing_partial(section, ts, results_dir, "hold_run")
    _remove_stale(folder.parent)
    if os.path.abspath(folder) in _HELD:
        return
    lock = folder / _LOCK
    try:
        _hold(lock, folder, section, ts)
    except FileNotFoundError:  # finished by its holder meanwhile
        raise RunError(f"run {section} {ts} is no longer unfinished") from None
    try:
        same = os.stat(lock).st_ino == os.fstat(_HELD[os.path.abspath(folder)]).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        _release(folder)
        raise RunError(f"run {section} {ts} is no longer unfinished")


def _existing_partial(section: str, ts: str, results_dir, who: str) -> Path:
    _check_name(section, who)
    _check_ts(ts, who)
    out = _results_dir(results_dir)
    folder = _partial_dir(out, section, ts)
    if not folder.is_dir():
        others = list_unfinished(section, out)
        raise RunError(f"{who}: no unfinished run {section} {ts} in {out} "
                       f"(unfinished runs: {', '.join(others) if others else 'none'})")
    return folder


def save_partial(section: str, ts: str, key: str, payload, results_dir=None) -> Path:
    """Atomically write one finished unit of work as ``<partial folder>/<key>.pkl``; return its path.

    ``payload`` is anything picklable (dicts, lists, DataFrames, torch tensors). The file is
    written under a temporary name, fsynced and renamed, so a kill never leaves half a unit; a
    failed write raises a one-line RunError and keeps every unit already saved. ``key`` may use
    only ``A-Z a-z 0-9 _ . -`` (it becomes a file name). Saving a key again replaces the unit.
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise RunError(f"save_partial: invalid key {key!r} (only letters, digits, '_', '.' and '-')")
    folder = _existing_partial(section, ts, results_dir, "save_partial")
    final = folder / f"{key}.pkl"
    with _signals_deferred():
        _commit(folder, [(_stage(final, lambda f: _dump(payload, f)), final)])
    return final


def _unit_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.name.endswith(".pkl") and _KEY.fullmatch(p.name[:-4]) and p.is_file())


def load_partial(section: str, ts: str, results_dir=None) -> tuple[dict, dict]:
    """``(options, {key: payload})`` of an unfinished run, units sorted by key.

    A unit file that cannot be read (damaged outside this pipeline, which never leaves half a
    file) is skipped with a one-line note on stderr: that unit is simply trained again on resume.
    Unreadable options raise RunError: without them the run cannot be resumed.
    """
    folder = _existing_partial(section, ts, results_dir, "load_partial")
    path = folder / _OPTIONS
    try:
        with open(path, "rb") as f:
            options = pickle.load(f)
    except Exception as e:
        raise RunError(f"{path}: the run's options cannot be read ({type(e).__name__}); "
                       f"this run cannot be resumed") from None
    units = {}
    for p in _unit_files(folder):
        try:
            with open(p, "rb") as f:
                units[p.name[:-4]] = pickle.load(f)
        except Exception as e:  # truncated pickles raise many different errors
            print(f"note: {p}: unreadable ({type(e).__name__}), skipped; that unit will be trained again",
                  file=sys.stderr)
    return options, units


def finish_run(section: str, ts: str, results: dict, models=None, results_dir=None, **meta) -> str:
    """Write the complete run under the claimed ``ts``, then remove its partial folder; return ``ts``.

    The files and their contract are exactly save_run's (same writer). If writing fails the
    partial folder is kept, so the run can be resumed once the problem (e.g. a full disk) is fixed.
    An interrupt waits until the run is written and its partial folder removed.
    """
    _check_name(section, "finish_run")
    _check_run(results, models, meta, "finish_run")
    folder = _existing_partial(section, ts, results_dir, "finish_run")
    out = folder.parent
    with _signals_deferred():
        _write_run(out, section, ts, results, models, meta)
        try:
            shutil.rmtree(folder)
        except OSError as e:  # the complete run wins over a leftover partial folder
            print(f"note: run {section} {ts} is complete; could not remove {folder}: {e.strerror or e}",
                  file=sys.stderr)
        _release(folder)
    return ts


# ----------------------------------------------------------------------------- listing

def list_unfinished(section: str, results_dir=None) -> list[str]:
    """Timestamps of the section's unfinished runs (a partial folder and no complete run), oldest first."""
    runs = layouts.scan(_results_dir(results_dir), section)
    return sorted((ts for ts, r in runs.items() if r.partial and not r.complete), key=_ts_key)


def list_runs(section: str, results_dir=None, include_unfinished: bool = False) -> list[str]:
    """Timestamps of the section's complete runs on disk, oldest first (and unfinished ones if asked).

    A run whose files were all written counts as complete even if its partial folder was left
    behind (a crash between writing the run and removing the folder).
    """
    runs = layouts.scan(_results_dir(results_dir), section)
    keep = [ts for ts, r in runs.items() if r.complete or (include_unfinished and r.partial)]
    return sorted(keep, key=_ts_key)


def list_sections(results_dir=None) -> list[str]:
    return layouts.sections(_results_dir(results_dir))


# ----------------------------------------------------------------------------- loading

def _unfinished_note(section: str, ts: str, folder: Path) -> str:
    n = len(_unit_files(folder))
    return (f"{ts} is unfinished ({n} unit{'s' if n != 1 else ''} of work saved in {folder}); "
            f"resume it with: python {section}.py --resume {ts}")


def load_run(section: str, timestamp: str | None = None, results_dir=None, load_models: bool = False):
    """Load a run: ``(results, meta)``, or ``(results, meta, models)`` with ``load_models=True``.

    No timestamp means the latest complete run. ``meta`` holds every essential key (section,
    timestamp, epochs, device, seed, dtype; None where an older run does not know it), taken from
    ``df.attrs`` or an older run's metadata; the DataFrames' attrs are filled the same way.
    An unfinished run raises RunError saying how to resume it.
    """
    out = _results_dir(results_dir)
    runs = layouts.scan(out, section)
    complete = sorted((ts for ts, r in runs.items() if r.complete), key=_ts_key)
    unfinished = sorted((ts for ts, r in runs.items() if r.partial and not r.complete), key=_ts_key)
    if timestamp is None and not complete:
        if unfinished:
            ts = unfinished[-1]
            raise RunError(f"no complete runs of section '{section}' in {out}; run "
                           + _unfinished_note(section, ts, runs[ts].partial))
        sections = list_sections(out)
        have = f"sections with runs: {', '.join(sections)}" if sections else "no runs at all"
        raise RunError(f"no runs of section '{section}' in {out} ({have})")
    if timestamp is None:
        timestamp = complete[-1]
    elif timestamp in unfinished:
        raise RunError(f"run {section} " + _unfinished_note(section, timestamp, runs[timestamp].partial))
    elif timestamp not in complete:
        listed = f"runs: {', '.join(complete) or 'none'}" + (f"; unfinished: {', '.join(unfinished)}"
                                                             if unfinished else "")
        raise RunError(f"no run {section}_{timestamp} in {out} ({listed})")

    run = runs[timestamp]
    results, meta = layouts.read(out, section, timestamp, run)
    models_path = out / f"{section}_{timestamp}{_MODELS_SUFFIX}"
    _check_nothing_missing(out, section, timestamp, results, models_path, run)
    if not load_models:
        return results, meta
    if not models_path.exists():
        raise RunError(f"{models_path}: this run saved no models")
    import torch
    try:
        specs = torch.load(models_path, weights_only=True)
    except Exception as e:
        raise RunError(f"{models_path}: cannot be read, truncated or corrupted ({type(e).__name__})") from None
    owner = _run_of(specs)
    if owner is not None and owner != (section, timestamp):
        raise RunError(f"{models_path}: holds the models of run {' '.join(map(str, owner))}, not of {section} "
                       f"{timestamp} (copied or renamed?)")
    return results, meta, _rebuild_models(models_path, specs)


def _run_of(specs):
    """(section, timestamp) of the run a models file belongs to; None for files written before the record."""
    recorded = specs.get(RUN_KEY) if isinstance(specs, dict) else None
    if not isinstance(recorded, dict):
        return None
    return recorded.get("section"), recorded.get("timestamp")


def _recorded_model_types(path: Path, section: str, ts: str) -> list[str]:
    """The model types the models file says its run has ([] if it cannot tell, or it is another run's).

    Files written before the record existed list the families they hold models of. Memory-mapped,
    so reading the structure does not read the weights.
    """
    import torch
    try:
        specs = torch.load(path, mmap=True, weights_only=True)
    except Exception:  # a damaged models file costs the models, not the DataFrames
        return []
    if not isinstance(specs, dict) or _run_of(specs) not in (None, (section, ts)):
        return []
    recorded = specs.get(MODEL_TYPES_KEY)
    if isinstance(recorded, (list, tuple)):
        return [t for t in recorded if t in MODEL_TYPES]
    return [t for t in specs if t in MODEL_TYPES]


def _check_nothing_missing(out, section, ts, results, models_path, run) -> None:
    if not models_path.exists():
        return
    missing = [t for t in _recorded_model_types(models_path, section, ts) if t not in results]
    if missing:
        files = ", ".join(str(out / f"{section}_{ts}_{t}.pkl") for t in missing)
        hint = f"; its partial results are kept: python {section}.py --resume {ts}" if run.partial else ""
        raise RunError(f"{files}: missing, but {models_path.name} says the run has "
                       f"{', '.join(missing)} (deleted, or not copied?){hint}")


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def _rebuild_models(path: Path, specs):
    """The models file's nested dicts (or lists) of ``{"__model__": spec}``, as rebuilt models.

    Anything else in the file (another structure, a spec missing keys, a state dict that does not
    fit its model) is a one-line RunError naming the file and where in it the problem is.
    """
    from utils.models.saving import build_model
    if not isinstance(specs, dict):
        raise RunError(f"{path}: wrong structure: holds a {type(specs).__name__}, "
                       f"not a dict of saved models by family")

    def walk(node, where):
        if isinstance(node, dict) and "__model__" in node:
            spec = node["__model__"]
            if not isinstance(spec, dict) or not {"family", "config", "state"} <= set(spec):
                raise RunError(f"{path}: wrong structure at {where}: a saved model needs family, config and state")
            try:
                return build_model(spec)
            except Exception as e:
                raise RunError(f"{path}: {where} cannot be rebuilt ({_one_line(e)})") from None
        if isinstance(node, dict):
            return {k: walk(v, f"{where}[{k!r}]") for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        raise RunError(f"{path}: wrong structure at {where}: a {type(node).__name__}, "
                       f"expected nested dicts of {{'__model__': spec}}")

    return walk({k: v for k, v in specs.items() if k not in (MODEL_TYPES_KEY, RUN_KEY)}, "models")
