"""Trained models as plain data (family, constructor arguments, state) and back, and their true parameter counts.

Specs hold tensors and plain Python only, so a models file loads with ``torch.load(weights_only=True)``
and worker processes send their models to the parent as data.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from utils.models import pykan_compat
from utils.models.kan import KAN_CKPT_DIR, PYKAN_KEYS, is_kan
from utils.models.modules import MLP, SIREN, default_dtype


def count_params(model) -> int:
    """Parameters that shape the output.

    A KAN edge that is not masked out has G+k spline coefficients plus scale_base and scale_sp;
    pykan's symbolic-branch parameters, its fixed affine node parameters and pruned edges don't count.
    """
    if is_kan(model):
        return int(sum(layer.mask.sum().item() * (layer.coef.shape[-1] + 2) for layer in model.act_fun))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_spec(model: nn.Module) -> dict:
    """Everything needed to rebuild the model: its family, constructor arguments, state dict.

    The state is copied: on the CPU ``.detach().cpu()`` returns the same storage, and pykan's
    ``refine`` makes the next model share ``scale_base``, ``scale_sp`` and ``mask`` with this one,
    so training at the next grid would silently change an earlier grid's snapshot.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if is_kan(model):
        config = {k: copy.deepcopy(getattr(model, k)) for k in PYKAN_KEYS}
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
