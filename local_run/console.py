"""One run's console: the project's own lines on screen, everything in a log file.

The libraries (and Beam's worker processes, which inherit the descriptors) write most of a run's output to fd 1
and 2, none of it actionable; so both go to a pipe, and a thread copies every byte to the log file and only the
project's ``[tag] text`` lines (everything with ``verbose``) to the terminal.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import Optional

# The project's own lines: "[data] ...", "[ingest] 12/40 files decoded", "[train] epoch 3/30 ...".
OWN_LINE = re.compile(rb"^\[[a-z][a-z0-9 _-]{0,20}\] ")


class RunConsole:
    """Context manager: fd 1 and 2 go through a filter to the terminal and to ``log_path``."""

    def __init__(self, log_path: str, verbose: bool = False) -> None:
        self.log_path = log_path
        self.verbose = verbose
        self.last_shown = time.time()
        self._log = None
        self._terminal: Optional[int] = None
        self._saved_err: Optional[int] = None
        self._reader: Optional[threading.Thread] = None

    def __enter__(self) -> "RunConsole":
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self._log = open(self.log_path, "ab", buffering=0)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._terminal, self._saved_err = os.dup(1), os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._reader = threading.Thread(target=self._pump, args=(read_end,), name="run-console", daemon=True)
        self._reader.start()
        # Python-level writers too, even where sys.stdout was replaced (IDEs, pytest).
        self._saved_streams = (sys.stdout, sys.stderr)
        sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")
        sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")
        return self

    def _pump(self, read_end: int) -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                self._log.write(line)
                if self.verbose or OWN_LINE.match(line):
                    os.write(self._terminal, line)
                    self.last_shown = time.time()

    def show(self, text: str) -> None:
        """Write straight to the terminal and the log (for the closing summary or error)."""
        data = (text if text.endswith("\n") else text + "\n").encode()
        if self._terminal is None:
            sys.stdout.write(data.decode())
            sys.stdout.flush()
            return
        self._log.write(data)
        os.write(self._terminal, data)

    def __exit__(self, *exc) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        sys.stdout, sys.stderr = self._saved_streams
        os.dup2(self._terminal, 1)
        os.dup2(self._saved_err, 2)
        os.close(self._saved_err)
        # Beam workers that outlive the run may still hold the pipe; don't wait for them.
        self._reader.join(timeout=5)
        os.close(self._terminal)
        self._terminal = None
        self._log.close()
