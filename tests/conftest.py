"""Helpers shared by the unit and end-to-end tests (``run_builders``) are imported from this folder."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
