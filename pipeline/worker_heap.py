"""Undo Dask's malloc setting in a process that runs TensorFlow models.

A Dask nanny starts its worker processes with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
``distributed.nanny.pre-spawn-environ``), so that freed memory goes back to the system soon.
Setting that variable also switches off glibc's dynamic mmap threshold: every allocation over
128 KiB (each intermediate tensor of a model call) is then a fresh ``mmap`` whose pages fault
in and are unmapped again when it is freed. Measured here (BENCHMARKS.md, "Batch tagging"):
one ``serving_default`` call on a 30-s clip took 106 ms of wall and 160 ms of CPU in a
worker started so, against 39 / 65 ms without the variable, and 56 / 80 ms after the two
``mallopt`` calls below. The thresholds let the heap keep and reuse freed blocks; the process
still returns memory above them to the system.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

DASK_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 1024 * 1024   # glibc's own ceiling for its dynamic threshold (64-bit)
TRIM_THRESHOLD = 128 * 1024 * 1024  # keep up to this much freed memory on the heap for reuse

_done = False


def reuse_freed_memory() -> bool:
    """If this process was started with Dask's trim setting, raise glibc's thresholds (once).

    Returns True when the thresholds were set here, False when there was nothing to do or the C
    library is not glibc (then the process runs as it was started).
    """
    global _done
    if _done or DASK_VARIABLE not in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
              and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    except (OSError, AttributeError):  # not glibc (musl, macOS): no mallopt
        return False
    _done = ok
    return ok
