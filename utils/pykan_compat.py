"""One fix to pykan 0.2.8, installed before any KAN is built: deterministic least squares.

pykan's ``curve2coef`` (used by ``update_grid``, ``refine`` and layer initialization) calls
``torch.linalg.lstsq`` with the CPU default driver, gelsy. Its result depends on memory alignment
(measured: the same inputs give different bits after unrelated allocations, with MKL's
reproducibility mode on too), so the same seed gave different KAN runs in different processes;
gelsy also failed once here ("SGELSY parameter 6"). gelsd (SVD) returns the same least-squares
solution, minimum-norm where the collocation matrix is rank deficient, and is deterministic.
CUDA supports only gels, which pykan already uses there.
"""
import importlib

import torch


def curve2coef(x_eval, y_eval, grid, k):
    """pykan's ``kan.spline.curve2coef``, with a deterministic driver on the CPU."""
    from kan.spline import B_batch
    batch, in_dim = x_eval.shape
    out_dim, n_coef = y_eval.shape[2], grid.shape[1] - k - 1
    mat = B_batch(x_eval, grid, k).permute(1, 0, 2)[:, None, :, :].expand(in_dim, out_dim, batch, n_coef)
    rhs = y_eval.permute(1, 2, 0).unsqueeze(dim=3)
    driver = "gelsd" if mat.device.type == "cpu" else None
    return torch.linalg.lstsq(mat, rhs, driver=driver).solution[:, :, :, 0]


def install():
    # importlib, not attribute access: kan.KANLayer names the class, which shadows the module
    for name in ("kan.spline", "kan.KANLayer", "kan.MultKAN"):
        importlib.import_module(name).curve2coef = curve2coef
