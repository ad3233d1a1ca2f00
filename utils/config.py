"""Every experiment number in one place: what is swept, the optimizer, the KAN protocol, quick sizes.

The command line can override the widths and the pruning constants; everything else here is the
protocol the README describes.
"""

# model families, in the order tables and figures list them
FAMILIES = ("mlp", "siren", "kan", "kan_pruning")

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

# --quick: a smoke-test sweep in seconds
QUICK_EPOCHS = 6
QUICK_DEPTHS, QUICK_GRIDS = (2, 3), (3, 5, 10)
QUICK_PDE_POINTS = {1: (1000, 2), 2: (1000, 200)}  # (interior, boundary)

DEFAULT_EPOCHS = 100
# training precision of every family (--dtype); README "How each family is trained" says why float64
DEFAULT_DTYPE = "float64"
