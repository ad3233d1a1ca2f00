"""The four model families' networks, their true parameter counts, and how they are saved.

MLP and SIREN are plain torch modules. KANs are pykan's own ``KAN`` (so ``plot``, ``prune`` and
``auto_symbolic`` keep working); ``make_kan`` builds one that never writes checkpoints.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile

import torch
from torch import nn

from utils import pykan_compat

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}

# pykan must never write into the user's working directory; even with auto_save=False some of
# its methods create models with auto_save=True that write to ckpt_path.
KAN_CKPT_DIR = os.path.join(tempfile.gettempdir(), "kan-pipeline-ckpt")


class MLP(nn.Module):
    """``depth`` linear layers of width ``width``, the activation between them."""

    def __init__(self, in_dim: int = 1, width: int = 5, depth: int = 2, activation: str = "tanh"):
        super().__init__()
        self.config = dict(in_dim=in_dim, width=width, depth=depth, activation=activation)
        dims = [in_dim] + [width] * (depth - 1) + [1]
        layers = []
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < depth - 1:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class SIREN(nn.Module):
    """Sitzmann et al. 2020: sin(omega0 (Wx + b)) layers and a linear head, with their init.

    The init keeps pre-activations of every layer roughly uniform in [-pi/2, pi/2] times omega0,
    which is what lets a sine network train at all.
    """

    def __init__(self, in_dim: int = 1, width: int = 5, depth: int = 2, omega0: float = 30.0):
        super().__init__()
        self.config = dict(in_dim=in_dim, width=width, depth=depth, omega0=omega0)
        self.omega0 = omega0
        dims = [in_dim] + [width] * (depth - 1) + [1]
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(depth))
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                n = layer.in_features
                bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / omega0
                layer.weight.uniform_(-bound, bound)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.sin(self.omega0 * layer(x))
        return self.layers[-1](x)


@contextlib.contextmanager
def default_dtype(dtype):
    """torch's default dtype set to ``dtype`` for a while: pykan builds its layers (and torch its
    modules) in the default dtype, so this is how a model is made in the training precision."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


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
    from utils.kan_stack import pykan_config
    pykan_compat.install()
    config = pykan_config(model)
    config["base_fun"] = config.pop("base_fun_name")
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


def count_params(model) -> int:
    """Parameters that shape the output.

    A KAN edge that is not masked out has G+k spline coefficients plus scale_base and scale_sp;
    pykan's symbolic-branch parameters, its fixed affine node parameters and pruned edges don't count.
    """
    if is_kan(model):
        return int(sum(layer.mask.sum().item() * (layer.coef.shape[-1] + 2) for layer in model.act_fun))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- save / rebuild

_KAN_KEYS = ("width", "grid", "k", "mult_arity", "base_fun_name", "symbolic_enabled",
             "affine_trainable", "grid_eps", "grid_range", "sp_trainable", "sb_trainable")


def model_spec(model: nn.Module) -> dict:
    """Everything needed to rebuild the model: its family, constructor arguments, state dict.

    The state is copied: on the CPU ``.detach().cpu()`` returns the same storage, and pykan's
    ``refine`` makes the next model share ``scale_base``, ``scale_sp`` and ``mask`` with this one,
    so training at the next grid would silently change an earlier grid's snapshot.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if is_kan(model):
        config = {k: copy.deepcopy(getattr(model, k)) for k in _KAN_KEYS}
        return {"family": "kan", "config": config, "state": state}
    family = {MLP: "mlp", SIREN: "siren"}.get(type(model))
    if family is None:
        raise TypeError(f"cannot save a {type(model).__name__}: only MLP, SIREN and pykan KAN")
    return {"family": family, "config": dict(model.config), "state": state}


def build_model(spec: dict) -> nn.Module:
    """The saved model, in the dtype it was saved in (a float64 model loaded into float32 layers
    would lose its last digits)."""
    family, config = spec["family"], dict(spec["config"])
    floats = [v.dtype for v in spec["state"].values() if torch.is_tensor(v) and v.is_floating_point()]
    with default_dtype(floats[0] if floats else torch.get_default_dtype()):
        if family == "kan":
            from kan import KAN
            pykan_compat.install()
            config["base_fun"] = config.pop("base_fun_name")
            with torch.random.fork_rng(devices=[]):  # pykan reseeds global RNGs
                model = KAN(**config, auto_save=False, ckpt_path=KAN_CKPT_DIR)
        else:
            model = {"mlp": MLP, "siren": SIREN}[family](**config)
    model.load_state_dict(spec["state"])
    return model


def to_spec(obj):
    """Nested dicts/lists of models -> the same nesting of specs (tensors and plain data only)."""
    if isinstance(obj, nn.Module):
        return {"__model__": model_spec(obj)}
    if isinstance(obj, dict) and "__model__" in obj:  # already a spec (from a worker process)
        return obj
    if isinstance(obj, dict):
        return {str(k): to_spec(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_spec(v) for v in obj]
    raise TypeError(f"models must be nested dicts/lists of torch modules, got {type(obj).__name__}")


def from_spec(obj):
    if isinstance(obj, dict) and "__model__" in obj:
        return build_model(obj["__model__"])
    if isinstance(obj, dict):
        return {k: from_spec(v) for k, v in obj.items()}
    return [from_spec(v) for v in obj]
