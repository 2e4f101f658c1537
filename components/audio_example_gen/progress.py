"""``[ingest] N/TOTAL files decoded`` while ingestion runs, across Beam worker processes.

Beam's metrics arrive only at the end, so each worker leaves an empty marker file per finished file in a local
folder (named after the file's path: a retried bundle does not count twice) and a launcher thread counts them.
No TensorFlow or TFX here: Beam workers import this module."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from typing import Callable, Optional

FOLDER = ".progress"


def mark_done(folder: Optional[str], key: str) -> None:
    """Leave the marker for ``key``; never raises (progress must not fail ingestion)."""
    if folder:
        with contextlib.suppress(OSError):
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, hashlib.sha1(key.encode()).hexdigest()), "wb").close()


def count_done(folder: str) -> int:
    try:
        return len(os.listdir(folder))
    except OSError:
        return 0


class Reporter:
    """Prints ``[ingest] N/TOTAL files decoded`` every ``interval`` seconds when N changed, and once at the end."""

    def __init__(self, folder: str, total: int, interval: float = 5.0,
                 emit: Callable[[str], None] = lambda line: print(line, flush=True)):
        self.folder, self.total, self.interval, self._emit = folder, total, interval, emit
        self._stop = threading.Event()
        self._shown = -1
        self._thread = threading.Thread(target=self._run, name="ingest-progress", daemon=True)

    def _report(self) -> None:
        done = count_done(self.folder)
        if done != self._shown:
            self._shown = done
            self._emit(f"[ingest] {done}/{self.total} files decoded")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._report()

    def __enter__(self) -> "Reporter":
        shutil.rmtree(self.folder, ignore_errors=True)  # markers of an earlier, interrupted attempt
        os.makedirs(self.folder, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        if exc_info[0] is None:
            self._report()
        shutil.rmtree(self.folder, ignore_errors=True)
