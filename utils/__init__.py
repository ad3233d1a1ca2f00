"""The pipeline: storage contract (``utils.io``), the Python API (``utils.api``), and the layers under them.

``from utils import load_run`` and the other storage functions work as before; they are loaded on
first use, so importing ``utils.<anything>`` (the command line's parser) costs neither pandas nor torch.
"""
_IO = ("RunError", "finish_run", "list_runs", "list_unfinished", "load_partial", "load_run", "save_partial",
       "save_run", "start_run")
__all__ = list(_IO)


def __getattr__(name):
    if name in _IO:
        from utils import io
        return getattr(io, name)
    raise AttributeError(f"module 'utils' has no attribute {name!r}")
