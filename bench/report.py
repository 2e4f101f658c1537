"""Write one benchmark's results into its own section of BENCHMARKS.md.

Each benchmark owns the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``,
so benchmarks can be re-run one at a time without touching each other's figures.
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEvery figure below was measured by the command shown with it; re-run it to refresh its "
          "section.\n")


# The vector extensions that set a CPU's speed for TensorFlow's kernels (oneDNN picks its code path by them):
# two machines with the same core count differ several-fold between AVX2 and AVX-512 with AMX.
VECTOR_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"))


def vector_extensions(flags: set[str]) -> list[str]:
    """The names of :data:`VECTOR_FLAGS` present in a CPU's ``flags`` (from /proc/cpuinfo)."""
    return [name for flag, name in VECTOR_FLAGS if flag in flags]


def machine_description() -> str:
    """Cores, CPU model and vector extensions, OS, libc and Python: what a reader needs to compare machines."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in (platform.processor(), platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    extensions = ", ".join(vector_extensions(flags)) or "no AVX2"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    capped = f", oneDNN capped at {isa}" if isa else ""
    libc = " ".join(platform.libc_ver())
    return (f"{os.cpu_count()} cores ({cpu}; {extensions}{capped}), {platform.system()} {platform.release()}, "
            f"{libc}, Python {platform.python_version()}")


def write_section(name: str, title: str, body: str, command: str) -> None:
    """Replace (or append) the section NAME with the figures in BODY (markdown).

    COMMAND is the reproducing command as a user types it, e.g. ``make bench-ingest``.
    """
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=BENCHMARKS_MD.parent).stdout.strip() or "uncommitted"
    except OSError:
        commit = "unknown"
    section = (f"<!-- bench:{name} -->\n## {title}\n\n"
               f"- Command: `{command}`\n- Date: {stamp} (commit {commit})\n"
               f"- Machine: {machine_description()}\n\n{body.strip()}\n<!-- /bench:{name} -->")
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)
