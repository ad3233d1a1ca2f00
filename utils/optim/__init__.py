"""The optimizers: pykan's L-BFGS for many models at once."""
