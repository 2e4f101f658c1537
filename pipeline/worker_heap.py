"""Undo Dask's malloc setting in a process that runs TensorFlow models.

A Dask nanny starts workers with ``MALLOC_TRIM_THRESHOLD_``, which also switches off glibc's dynamic mmap threshold:
every allocation over 128 KiB (each intermediate tensor) becomes a fresh ``mmap``, which slows model calls
(BENCHMARKS.md, "Batch tagging"). Raised thresholds let the heap reuse freed blocks."""
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
    """Raise glibc's thresholds once if Dask's trim setting started this process; False if nothing done or not glibc."""
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
