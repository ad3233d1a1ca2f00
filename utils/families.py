"""The four model families as data: everything that differs between them is a field here.

A family's *configuration* is the set of columns that tells its models apart within a run (MLP:
depth and activation; SIREN: depth; KAN: one configuration, whose grid stages are its models;
pruned KAN: its stages). Tasks of one family and configuration share one architecture, so the sweep
trains them as one ensemble; ``trainer`` names the function of ``utils.engine.training`` that does.
The sweep, the storage contract, the statistics and the figures all read this registry; none of
them tests a family's name.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from utils import config


@dataclass(frozen=True)
class Family:
    name: str
    label: str                # in tables and legends
    color: str
    config_columns: tuple     # columns that tell its configurations (and, for KANs, stages) apart
    settings: tuple           # (column, key of the sweep's settings): what --width etc. set
    swept: tuple              # (column, values, values with --quick): its configurations' grid
    trainer: str              # function of utils.engine.training that trains an ensemble of it
    cost: float               # rough relative cost of a member, to start the longest ensembles first
    key_format: str           # a trained model's name within its dataset, from its row's fields
    grid_schedule: bool = False   # trains through the KAN grid schedule (its rows have grid_size)
    pruned_only: bool = False     # judged by its pruned stages only (not the sparsify stage)
    activation: str | None = None  # the stacked network's activation when it has no activation column
    api_defaults: dict = field(default_factory=dict)  # utils.api's configuration of one model

    def configs(self, quick: bool, settings: dict) -> list[tuple]:
        """The configurations a sweep trains, each as (column, value) pairs that land in its rows."""
        fixed = tuple((column, settings[key]) for column, key in self.settings)
        grid = [()]
        for column, values, quick_values in self.swept:
            grid = [g + ((column, v),) for g in grid for v in (quick_values if quick else values)]
        return [fixed + g for g in grid]

    def key(self, row) -> str:
        """A trained model's name within its dataset, from its row (or a dict with the same fields)."""
        return self.key_format.format(**{k: row[k] for k in ("depth", "activation", "stage", "grid_size")
                                         if k in row})


FAMILIES = {
    "mlp": Family("mlp", "MLP", "#1f77b4", ("depth", "activation"), (("width", "width"),),
                  (("depth", config.MLP_DEPTHS, config.QUICK_DEPTHS),
                   ("activation", config.MLP_ACTIVATIONS, config.MLP_ACTIVATIONS)),
                  "train_nets", 1.0, "depth{depth}_activation{activation}",
                  api_defaults={"depth": 3, "activation": "tanh"}),
    "siren": Family("siren", "SIREN", "#2ca02c", ("depth",), (("width", "width"),),
                    (("depth", config.SIREN_DEPTHS, config.QUICK_DEPTHS),), "train_nets", 1.0, "depth{depth}",
                    activation="sine", api_defaults={"depth": 3}),
    "kan": Family("kan", "KAN", "#d62728", ("grid_size",), (("width", "kan_width"),), (), "train_kans", 10.0,
                  "kan_grid{grid_size}", grid_schedule=True),
    "kan_pruning": Family("kan_pruning", "pruned KAN", "#ff7f0e", ("stage", "grid_size"),
                          (("width", "kan_width"), ("prune_lamb", "prune_lamb"), ("prune_node_th", "prune_node_th"),
                           ("prune_edge_th", "prune_edge_th")), (), "train_kans_pruned", 14.0,
                          "{stage}_grid{grid_size}", grid_schedule=True, pruned_only=True),
}
FAMILY_ORDER = tuple(FAMILIES)  # tables, figures and the storage contract list families in this order

# what the command line may change, with the protocol's defaults; each lands in a column of its family
SETTINGS = {"width": config.WIDTH, "kan_width": config.KAN_WIDTH, "prune_lamb": config.PRUNE_LAMB,
            "prune_node_th": config.PRUNE_NODE_TH, "prune_edge_th": config.PRUNE_EDGE_TH}


def model_key(family: str, row) -> str:
    """Where a trained model is stored: models[family][dataset_name][key].

    ``row`` is a mapping with the family's configuration columns and ``seed`` (a DataFrame row will
    do). Runs saved before several seeds existed have keys without the ``_seed`` part
    (``FAMILIES[family].key(row)``).
    """
    return f"{FAMILIES[family].key(row)}_seed{row['seed']}"
