"""Two changes to pykan 0.2.8, installed before any KAN is built.

1. Deterministic least squares.

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
sides (pykan solves every edge separately): same solution, 2-5x less time. A non-finite matrix
(a grid collapsed by constant samples, e.g. in a fully pruned KAN) raises ``LinAlgError`` before
LAPACK sees it; MKL printed an error line to stdout for each one.

2. B-splines from their k+1 nonzero bases. pykan's ``B_batch`` builds all G+k bases through k
dense recursion levels; it is the main cost of pykan's own forward (used by ``update_grid``,
``refine``, pruning and the sparsify stage) at large G. The replacement returns the same values
(tested against the original to 1e-12 in float64), differentiable in x as before.

``original()`` restores pykan as released, for benchmarks and as the tests' reference.
"""
import contextlib
import importlib

import torch

from utils.numerics.splines import dense_basis


def curve2coef(x_eval, y_eval, grid, k):
    """pykan's ``kan.spline.curve2coef``, with a deterministic driver on the CPU."""
    mat = B_batch(x_eval, grid, k).permute(1, 0, 2)           # (in, batch, G+k)
    rhs = y_eval.permute(1, 0, 2)                              # (in, batch, out)
    if not bool(torch.isfinite(mat).all()):  # a collapsed grid (zero spacing): LAPACK would print to stdout
        raise torch.linalg.LinAlgError("curve2coef: the B-spline matrix is not finite (collapsed grid)")
    if 0 in rhs.shape or 0 in mat.shape:  # a layer without outputs (a KAN pruned to nothing): nothing to fit,
        return mat.new_zeros(mat.shape[0], rhs.shape[2], mat.shape[2])  # and MKL prints an error for it
    coef = torch.linalg.lstsq(mat.cpu(), rhs.cpu(), driver="gelsd").solution   # (in, G+k, out)
    return coef.permute(0, 2, 1).contiguous().to(mat.device)


def B_batch(x, grid, k=0, extend=True, device="cpu"):
    """pykan's ``kan.spline.B_batch``: (batch, in) points -> (batch, in, G+k) dense bases."""
    if grid.shape[0] == 1 and x.shape[1] > 1:  # pykan broadcasts one grid over all inputs (refine)
        grid = grid.expand(x.shape[1], -1)
    return dense_basis(x, grid, k).permute(1, 0, 2)


# (module, attribute, replacement); importlib, not attribute access: kan.KANLayer names the class
PATCHES = [("kan.spline", "curve2coef", curve2coef), ("kan.KANLayer", "curve2coef", curve2coef),
           ("kan.MultKAN", "curve2coef", curve2coef), ("kan.spline", "B_batch", B_batch)]
_ORIGINALS = {(m, a): getattr(importlib.import_module(m), a) for m, a, _ in PATCHES}


def install():
    for module, attr, replacement in PATCHES:
        setattr(importlib.import_module(module), attr, replacement)


@contextlib.contextmanager
def original():
    """pykan exactly as released, e.g. to benchmark against it or as a test reference."""
    saved = {(m, a): getattr(importlib.import_module(m), a) for m, a, _ in PATCHES}
    for (m, a), f in _ORIGINALS.items():
        setattr(importlib.import_module(m), a, f)
    try:
        yield
    finally:
        for (m, a), f in saved.items():
            setattr(importlib.import_module(m), a, f)
