"""Shared pipeline code: storage contract, datasets, models, training, metrics, sweep."""
from utils.io import (RunError, finish_run, list_runs, list_unfinished, load_partial, load_run, save_partial,
                      save_run, start_run)

__all__ = ["RunError", "finish_run", "list_runs", "list_unfinished", "load_partial", "load_run", "save_partial",
           "save_run", "start_run"]
