"""A pipeline run on this machine, around TFX's LocalDagRunner: the checks before it starts (preflight), one run
per output directory (lock), the console and its log file (console, steps), the run itself (run), what it
produced (summary) and how it ended when it failed (failure). ``local_runner.py`` parses the flags and calls it.
"""
