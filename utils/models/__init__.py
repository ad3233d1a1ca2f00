"""Single models: MLP and SIREN modules, pykan KANs, parameter counts, saving and loading."""
