"""reuse_freed_memory: under Dask's MALLOC_TRIM_THRESHOLD_, large blocks come from the heap again.

Checked through glibc's own counter of mmapped blocks (mallinfo2().hblks) in a fresh process,
since the variable only acts at process start-up.
"""
import os
import subprocess
import sys

from pipeline import worker_heap

PROBE = """
import ctypes, sys
import numpy as np
from pipeline.worker_heap import reuse_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

def mmapped_while_holding(nbytes):
    block = np.ones(nbytes, np.uint8)
    held = libc.mallinfo2().hblks
    del block
    return held

before = mmapped_while_holding(1 << 20)  # 1 MiB: over 64 KiB and 128 KiB
changed = reuse_freed_memory() if sys.argv[1] == "fix" else None
after = mmapped_while_holding(1 << 20)  # glibc's own dynamic threshold would now serve it from the heap
print(before, changed, after)
"""


def _probe(env_value, fix=True):
    env = {k: v for k, v in os.environ.items() if k != worker_heap.DASK_VARIABLE}
    if env_value is not None:
        env[worker_heap.DASK_VARIABLE] = env_value
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", PROBE, "fix" if fix else "no"], env=env, capture_output=True, text=True, check=True)
    before, changed, after = out.stdout.split()
    return int(before), changed, int(after)


def test_dask_setting_mmaps_every_large_block_and_the_fix_undoes_it():
    before, _, after = _probe("65536", fix=False)
    assert after == before  # Dask's setting: the second 1 MiB block is again a block of its own
    before, changed, after = _probe("65536", fix=True)
    assert changed == "True"
    assert after == before - 1  # after the fix: from the heap


def test_nothing_changes_without_the_dask_variable():
    assert _probe(None)[1] == "False"
