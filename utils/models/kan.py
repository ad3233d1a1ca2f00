"""pykan's KAN as this pipeline builds, refines and prunes it: pykan stays the model of record.

Every saved KAN is a pykan ``KAN`` (``plot``, ``prune`` and ``auto_symbolic`` work on it). pykan
builds its layers in torch's default dtype, writes checkpoints unless told not to, and reseeds the
global random generators in its constructor; the functions here contain all three.
"""
from __future__ import annotations

import copy
import os
import tempfile

import torch

from utils.models import pykan_compat
from utils.models.modules import default_dtype

# pykan must never write into the user's working directory; even with auto_save=False some of
# its methods create models with auto_save=True that write to ckpt_path.
KAN_CKPT_DIR = os.path.join(tempfile.gettempdir(), "kan-pipeline-ckpt")

# pykan KAN's constructor arguments that a model carries as attributes (base_fun as base_fun_name)
PYKAN_KEYS = ("width", "grid", "k", "mult_arity", "base_fun_name", "symbolic_enabled", "affine_trainable",
              "grid_eps", "grid_range", "sp_trainable", "sb_trainable")


def pykan_config(model) -> dict:
    """The constructor arguments that rebuild a pykan KAN of ``model``'s kind (``base_fun`` by name)."""
    config = {k: copy.deepcopy(getattr(model, k)) for k in PYKAN_KEYS}
    config["base_fun"] = config.pop("base_fun_name")
    return config


def make_kan(width, grid: int, k: int = 3, seed: int = 0, device="cpu", dtype=None):
    """pykan ``KAN`` in ``dtype`` (default: torch's default dtype) with checkpointing off. pykan
    reseeds the global RNGs in its constructor."""
    from kan import KAN
    pykan_compat.install()
    with default_dtype(dtype or torch.get_default_dtype()):
        return KAN(width=copy.deepcopy(width), grid=grid, k=k, seed=seed, auto_save=False,
                   ckpt_path=KAN_CKPT_DIR, device=device)


def pykan_like(model, grid: int):
    """A pykan KAN of ``model``'s width, options and node maps on another grid (for refined members).

    Its splines are overwritten by the caller (``kan_stack.StackedKAN.to_pykan``); node scales and
    biases are copied, as pykan's ``refine`` copies them.
    """
    from kan import KAN
    pykan_compat.install()
    config = pykan_config(model)
    config.pop("grid")
    with torch.random.fork_rng(devices=[]), default_dtype(model.act_fun[0].coef.dtype):  # pykan reseeds RNGs
        new = KAN(**config, grid=grid, auto_save=False, ckpt_path=KAN_CKPT_DIR, device=model.device)
    with torch.no_grad():
        for name in ("node_bias", "node_scale", "subnode_bias", "subnode_scale"):
            for dst, src in zip(getattr(new, name), getattr(model, name)):
                dst.data = src.data.clone()
    return new


def _quiet(model):
    """pykan's refine() and prune() return models with auto_save=True, which write checkpoints."""
    model.auto_save = False
    return model


def prune(model, x, node_th, edge_th):
    """pykan's ``prune(node_th, edge_th)`` (nodes, then edges) without its checkpoint logging, which writes files."""
    with default_dtype(model.act_fun[0].coef.dtype):  # prune_node builds its new KAN in the default dtype
        model.get_act(x)
        with torch.random.fork_rng(devices=[]):
            model = _quiet(model.prune_node(node_th, log_history=False))
        model.forward(model.cache_data)
        model.attribute()
        model.prune_edge(edge_th, log_history=False)
    return model


def is_kan(model) -> bool:
    return type(model).__name__ == "MultKAN"
