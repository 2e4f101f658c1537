"""Deterministic synthetic GTZAN-shaped data set (python -m synthetic --help)."""
