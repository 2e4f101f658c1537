"""Batch tagging of an audio library with the pushed genre model: ``python -m tagging``."""
