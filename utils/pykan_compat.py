"""One fix to pykan 0.2.8, installed before any KAN is built: deterministic least squares.

pykan's ``curve2coef`` (used by ``update_grid``, ``refine`` and layer initialization) calls
``torch.linalg.lstsq`` with the CPU default driver, gelsy. Its result depends on memory alignment
(measured: the same inputs give different bits after unrelated allocations, with MKL's
reproducibility mode on too), so the same seed gave different KAN runs in different processes;
gelsy also failed once here ("SGELSY parameter 6"). gelsd (SVD) returns the same least-squares
solution, minimum-norm where the collocation matrix is rank deficient, and is deterministic.
On CUDA torch offers only gels (QR without pivoting), which returned NaN coefficients when a
pruned KAN was refined (rank-deficient collocation matrices; measured on an H100). The matrices
are tiny (at most a few thousand rows by G+k columns), so they are solved on the CPU with gelsd
on every device, which also gives the same coefficients on CPU and GPU. All edges leaving one
input share one collocation matrix, so each matrix is factorized once for all its right-hand
sides (pykan solves every edge separately): same solution, 2-5x less time.
"""
import contextlib
import importlib

import torch


def curve2coef(x_eval, y_eval, grid, k):
    """pykan's ``kan.spline.curve2coef``, with a deterministic driver on the CPU."""
    from kan.spline import B_batch
    mat = B_batch(x_eval, grid, k).permute(1, 0, 2)           # (in, batch, G+k)
    rhs = y_eval.permute(1, 0, 2)                              # (in, batch, out)
    coef = torch.linalg.lstsq(mat.cpu(), rhs.cpu(), driver="gelsd").solution   # (in, G+k, out)
    return coef.permute(0, 2, 1).contiguous().to(mat.device)


MODULES = ("kan.spline", "kan.KANLayer", "kan.MultKAN")


def install():
    # importlib, not attribute access: kan.KANLayer names the class, which shadows the module
    for name in MODULES:
        importlib.import_module(name).curve2coef = curve2coef


@contextlib.contextmanager
def original():
    """pykan exactly as released, e.g. to benchmark against it."""
    modules = [importlib.import_module(name) for name in MODULES]
    saved = [m.curve2coef for m in modules]
    for m in modules:
        m.curve2coef = _ORIGINAL
    try:
        yield
    finally:
        for m, f in zip(modules, saved):
            m.curve2coef = f


_ORIGINAL = importlib.import_module("kan.spline").curve2coef
