"""A pipeline run on this machine around TFX's LocalDagRunner; ``local_runner.py`` parses the flags and calls it."""
