"""One run's console: the project's own lines on screen, everything in a log file, and the step lines.

The libraries (and Beam's worker processes, which inherit the descriptors) write most of a run's output to fd 1
and 2, none of it actionable; so both go to a pipe, and a thread copies every byte to the log file and only the
project's ``[tag] text`` lines (everything with ``verbose``) to the terminal.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Optional

# The project's own lines: "[data] ...", "[ingest] 12/40 files decoded", "[train] epoch 3/30 ...".
OWN_LINE = re.compile(rb"^\[[a-z][a-z0-9 _-]{0,20}\] ")
HEARTBEAT_SECONDS = 30.0


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
            print(data.decode(), end="", flush=True)
        else:
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


class StepTracker(logging.Handler):
    """Turns TFX's component log records (absl's logger) into ``[step]`` lines, with a heartbeat on long steps; the
    log file gets TFX's full story at INFO."""

    def __init__(self, console: RunConsole) -> None:
        from absl import logging as absl_logging
        super().__init__(level=logging.INFO)
        self.console = console
        self.current: Optional[str] = None
        self.started = 0.0
        self.outcome = ""  # how the current step ended, when not by executing
        self.steps: dict[str, dict] = {}  # component -> seconds and outcome, in order
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, name="step-heartbeat", daemon=True).start()
        absl_logging.set_verbosity(absl_logging.INFO)
        logging.getLogger("absl").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Component ") and message.endswith(" is running."):
            self.current, self.started, self.outcome = message[len("Component "):-len(" is running.")], time.time(), ""
            print(f"[step] {self.current} ...", flush=True)
        elif message.startswith("A cached execution") and self.current:
            self.outcome = "reused from cache"
        elif message.startswith("Skipping execution for") and self.current:
            self.outcome = "skipped (its condition does not hold: the model was not blessed)"
        elif message.startswith("Component ") and message.endswith(" is finished.") and self.current:
            seconds = time.time() - self.started
            self.steps[self.current] = {"seconds": round(seconds, 1), "outcome": self.outcome or "executed"}
            how = self.outcome or f"done in {seconds:.0f} s"
            print(f"[step] {self.current}: {how}", flush=True)
            self.current = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(5.0):
            quiet = time.time() - self.console.last_shown
            if self.current and quiet >= HEARTBEAT_SECONDS:
                print(f"[step] {self.current} still running ({time.time() - self.started:.0f} s)", flush=True)

    def close(self) -> None:
        """Stop listening and the heartbeat."""
        logging.getLogger("absl").removeHandler(self)
        self._stop.set()
        super().close()
