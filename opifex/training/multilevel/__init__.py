"""Multilevel (coarse-to-fine) training: network hierarchies and transfer operators."""
