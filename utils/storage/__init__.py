"""Which files make up a run on disk, in every layout this pipeline has written (the contract itself: utils/io.py)."""
