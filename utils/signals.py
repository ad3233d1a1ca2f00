"""SIGINT and SIGTERM, set and put back together: a run routes both to stop it (utils.pipeline.cli),
ignores both while its worker processes start (they inherit that; utils.pipeline.sweep) and defers
both while it saves (utils.io). Python handles signals on the main thread only; elsewhere these do
nothing."""
from __future__ import annotations

import signal
import threading

STOPPING = (signal.SIGINT, signal.SIGTERM)


def route(on_sigint, on_sigterm=None) -> dict:
    """Set SIGINT's handler to ``on_sigint`` and SIGTERM's to ``on_sigterm`` (default: the same);
    return the handlers they had, for ``restore`` ({} off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signal.SIGINT: signal.signal(signal.SIGINT, on_sigint),
            signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm or on_sigint)}


def restore(handlers: dict) -> None:
    """Put back the handlers ``route`` returned (None, a handler Python did not set: the default)."""
    for s, h in handlers.items():
        signal.signal(s, signal.SIG_DFL if h is None else h)
