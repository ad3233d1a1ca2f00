"""Tests import the project from the repository root and run torch on one thread, as the sweep does."""
import torch

torch.set_num_threads(1)
