"""Ensembles of models trained as one: stacked MLPs, SIRENs and KANs, the compiled KAN loss, the training loops."""
