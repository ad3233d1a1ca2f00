"""Running a section: tasks and ensembles, worker processes and Dask, checkpoints and resume, the command line."""
