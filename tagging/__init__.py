"""Batch tagging of an audio library with the pushed genre model (``python -m tagging``).

A Beam pipeline: decode with ingestion's reader and quarantine rules, classify with RunInference on the
served signature, and write one row per file plus the quarantine list and a summary.
"""
