"""Every experiment number in one place: what is swept, the data sizes, the optimizer, the KAN
protocol, the PDE defaults, quick sizes.

The command line can override the widths, the pruning constants and the PDE options; everything
else here is the protocol the README describes.
"""
from pathlib import Path

# where runs are saved unless --results-dir (or results_dir=) says otherwise
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"

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
