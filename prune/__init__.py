"""Federated pruning (FedTiny and baselines) on Flower; the public entry point is
:func:`tinymcu.prune.run.run_pruning`."""
