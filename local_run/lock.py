"""One output directory, one run: two runs would share the MLMD database, the synthetic data and the push
destination. The kernel releases ``flock`` when the holder dies, so a killed run leaves no stale lock."""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Iterator

from config.errors import UserError

LOCK_FILE = ".run.lock"


@contextlib.contextmanager
def output_dir_lock(output_dir: str) -> Iterator[None]:
    """``with output_dir_lock(dir):`` holds the lock (released when the lock file closes) or raises UserError naming
    the holder."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, LOCK_FILE), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise UserError(f"Another run is using this output directory: {handle.read().strip() or 'unknown'}",
                            where=output_dir, fix="wait for that run to finish, or pass another --output-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
