"""Every experiment number in one place: what is swept, the data sizes, the optimizer, the KAN
protocol, the PDE defaults, quick sizes.

The command line can override the widths, the pruning constants and the PDE options; everything
else here is the protocol the README describes.
"""
from pathlib import Path

# where runs are saved unless --results-dir (or results_dir=) says otherwise
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
# a run's timestamp: 20251022_203715, or 20251022_203715_1 for a second run that second
TIMESTAMP = r"\d{8}_\d{6}(?:_\d+)?"
MAX_SEED = 2 ** 32  # numpy's and pykan's seeds must lie in [0, 2**32)

# MLP and SIREN: hidden width (--width), depth = number of linear layers
WIDTH = 5
MLP_DEPTHS, MLP_ACTIVATIONS, SIREN_DEPTHS = (2, 3, 4, 5, 6), ("tanh", "relu", "silu"), (2, 3, 4, 5, 6)
SIREN_OMEGA0 = 30.0

# KAN: [n_in, KAN_WIDTH, 1] (--kan-width), cubic splines, grid extension through KAN_GRIDS
KAN_WIDTH = 5
KAN_GRIDS = (3, 5, 10, 20, 50, 100)
KAN_K = 3
# pykan fit(): update_grid every 5 steps during the first 50 steps of each fit() call
GRID_UPDATE_EVERY, GRID_UPDATE_UNTIL = 5, 50

# pruned KAN, the KAN paper's protocol: fit(lamb=...) with pykan's regularizer, then prune()
# (lamb and node_th the paper's, edge_th pykan's default); --prune-lamb/--prune-node-th/--prune-edge-th
PRUNE_LAMB, PRUNE_NODE_TH, PRUNE_EDGE_TH = 1e-2, 1e-2, 3e-2
# fit()'s regularizer arguments: reg_metric, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff
PRUNE_REG = ("edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0)

# the optimizer of every family: kan.LBFGS exactly as pykan's fit() configures it
LBFGS_OPTIONS = dict(lr=1.0, max_iter=20, history_size=10, tolerance_grad=1e-32, tolerance_change=1e-32,
                     tolerance_ys=1e-32)

# data: random training, validation and test points per dataset; the dense grid errors are measured on
N_TRAIN = N_VAL = N_TEST = 1000
N_DENSE_1D, N_DENSE_2D = 10_000, 100      # 2D: per axis
# PDEs, the KAN paper's defaults (2D): alpha = 0.01, 10,000 interior and 800 boundary points. In 1D the
# boundary is the two end points, and 1000 interior points (as many as section 1.1's data) are 10 times
# denser along the axis than the paper's 10,000 points are along each axis in 2D.
PDE_DEFAULTS = {1: {"alpha": 0.01, "n_interior": 1000, "n_boundary": 2},
                2: {"alpha": 0.01, "n_interior": 10_000, "n_boundary": 800}}
N_SUPERVISED = 1000                       # --mode supervised: samples of u

# --quick: a smoke-test sweep in seconds
QUICK_EPOCHS = 6
QUICK_DEPTHS, QUICK_GRIDS = (2, 3), (3, 5, 10)
QUICK_PDE_POINTS = {1: (1000, 2), 2: (1000, 200)}  # (interior, boundary)

DEFAULT_EPOCHS = 100
# training precision of every family (--dtype); README "How each family is trained" says why float64
DEFAULT_DTYPE = "float64"

# --device auto's cost model (utils/device.py): what one epoch of an ensemble costs on each device,
# to put every family where its part of the sweep finishes soonest. Measured: docs/speed.md.
# CPU, one worker process, float64, the metrics included: seconds per member and epoch =
# fixed + per_1000_points * (training points / 1000), at the mean depth 4 (nets scale with depth / 4);
# from the runs of 2026-12-03 (sections 1.1, 1.2, 1.3 at their defaults), each family's training time
# per member-epoch, times 1.3 for the metrics.
CPU_SECONDS = {("mlp", "regression"): (0.0, 0.0038), ("siren", "regression"): (0.0, 0.0061),
               ("kan", "regression"): (0.0, 0.014), ("kan_pruning", "regression"): (0.0, 0.010),
               ("mlp", "pinn"): (0.0052, 0.0112), ("siren", "pinn"): (0.0048, 0.0173),
               ("kan", "pinn"): (0.011, 0.051), ("kan_pruning", "pinn"): (0.018, 0.035)}
# GPU: seconds per epoch of one program whatever its size (launch-bound). host engine: a program is an
# ensemble (nets at depth 2, scaling with 1 + (depth - 2) / 4); measured on an H200 (torch 2.11,
# bench/profile_ensembles.py --device cuda --epochs 5; docs/engine.md). resident engine: a section's
# MLPs and SIRENs are one program ("nets", utils.engine.training.merge_key), each KAN ensemble one;
# ESTIMATED (ticks per epoch from bench/tick_floor.py, ~24, x aten ops per tick, 1100-1200, x ~2 us per
# replayed node, plus metrics and grid updates), to be replaced by bench/gpu_engine_check.sh B's figures.
GPU_SECONDS = {"host": {("mlp", "regression"): 0.12, ("siren", "regression"): 0.11, ("kan", "regression"): 0.48,
                        ("kan_pruning", "regression"): 1.08, ("mlp", "pinn"): 0.19, ("siren", "pinn"): 0.14,
                        ("kan", "pinn"): 0.62, ("kan_pruning", "pinn"): 0.82},
               "resident": {("nets", "regression"): 0.08, ("kan", "regression"): 0.09,
                            ("kan_pruning", "regression"): 0.12, ("nets", "pinn"): 0.10,
                            ("kan", "pinn"): 0.1, ("kan_pruning", "pinn"): 0.13}}
GPU_START_SECONDS = 5.0   # a GPU process: CUDA context, imports, captures
