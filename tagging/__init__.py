"""Batch tagging of an audio library with the pushed genre model (``python -m tagging``).

A Beam pipeline: list the files on the launcher, decode them with ingestion's own reader and
quarantine rules (audio/decode.py), classify each clip with Beam's
RunInference on the SavedModel's ``serving_default`` signature (the served answer, segment
voting included), and write one row per file (CSV, JSON lines, Parquet) plus the quarantine
list and a summary. Runs on the DirectRunner by default and on a Dask cluster
(``--dask HOST:PORT``); see docs/distributed.md.
"""
