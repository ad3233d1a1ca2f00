"""The four model families, each described in one place: what the sweep reads to train it, what the
summary and the figures read to show it.

A family's *configuration* is the set of columns that distinguishes its models within a run (MLP:
depth and activation; SIREN: depth; KAN: one configuration, whose grid stages are its models;
pruned KAN: its stages). Tasks of one family and configuration share one architecture, so the
sweep trains them as one ensemble (``utils.training``); ``trainer`` names the function that does.
"""
from __future__ import annotations

from dataclasses import dataclass

from utils.config import MLP_ACTIVATIONS, MLP_DEPTHS, QUICK_DEPTHS, SIREN_DEPTHS


@dataclass(frozen=True)
class Family:
    name: str
    label: str                # in tables and legends
    color: str
    config_columns: tuple     # columns that tell its configurations (and, for KANs, stages) apart
    trainer: str              # function of utils.training that trains an ensemble of it
    cost: float               # rough relative cost of a member, to start the longest ensembles first

    def configs(self, quick: bool, settings: dict) -> list[tuple]:
        """The configurations a sweep trains, each as (column, value) pairs that land in its rows."""
        if self.name == "mlp":
            return [(("width", settings["width"]), ("depth", d), ("activation", a))
                    for d in (QUICK_DEPTHS if quick else MLP_DEPTHS) for a in MLP_ACTIVATIONS]
        if self.name == "siren":
            return [(("width", settings["width"]), ("depth", d)) for d in (QUICK_DEPTHS if quick else SIREN_DEPTHS)]
        if self.name == "kan":
            return [(("width", settings["kan_width"]),)]
        return [(("width", settings["kan_width"]), ("prune_lamb", settings["prune_lamb"]),
                 ("prune_node_th", settings["prune_node_th"]), ("prune_edge_th", settings["prune_edge_th"]))]

    def key(self, row) -> str:
        """A trained model's name within its dataset, from its row (or a dict with the same fields)."""
        if self.name == "mlp":
            return f"depth{row['depth']}_activation{row['activation']}"
        if self.name == "siren":
            return f"depth{row['depth']}"
        stage = "kan" if self.name == "kan" else row["stage"]
        return f"{stage}_grid{row['grid_size']}"

    def train(self, *args):
        from utils import training
        return getattr(training, self.trainer)(*args)


FAMILIES = {
    "mlp": Family("mlp", "MLP", "#1f77b4", ("depth", "activation"), "train_nets", 1.0),
    "siren": Family("siren", "SIREN", "#2ca02c", ("depth",), "train_nets", 1.0),
    "kan": Family("kan", "KAN", "#d62728", ("grid_size",), "train_kans", 10.0),
    "kan_pruning": Family("kan_pruning", "pruned KAN", "#ff7f0e", ("stage", "grid_size"), "train_kans_pruned", 14.0),
}
