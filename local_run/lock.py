"""One output directory, one run: two runs would share the MLMD database, the synthetic data and the push
destination. The kernel releases ``flock`` when the holder dies, so a killed run leaves no stale lock."""
from __future__ import annotations

import fcntl
import os
import time
from typing import IO, Optional

from config.errors import UserError

LOCK_FILE = ".run.lock"


class OutputDirLock:
    """``with OutputDirLock(dir):`` holds the lock or raises UserError naming the holder."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_FILE)
        self._file: Optional[IO[str]] = None

    def __enter__(self) -> "OutputDirLock":
        os.makedirs(self.output_dir, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UserError(f"Another run is using this output directory: {holder}", where=self.output_dir,
                            fix="wait for that run to finish, or pass another --output-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
