"""The audio library: decoding, the level rules, path checks, data-root discovery and split groups.

It imports only the configuration, never a component, model or the pipeline, so ingestion, serving, the
page and the tagger share one reading of a file.
"""
