"""Shared pipeline code: storage contract, datasets, models, training, metrics, sweep."""
from utils.io import RunError, list_runs, load_run, save_run

__all__ = ["RunError", "list_runs", "load_run", "save_run"]
