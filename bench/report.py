"""Writes each benchmark's figures into its own section of BENCHMARKS.md, between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``, so benchmarks re-run one at a time without touching each other's figures."""
from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEvery figure below was measured by the command shown with it; re-run it to refresh its "
          "section.\n")

# The vector extensions that set a CPU's speed for TensorFlow's kernels (oneDNN picks its code path by them):
# two machines with the same core count differ several-fold between AVX2 and AVX-512 with AMX.
VECTOR_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"))


def vector_extensions(flags: set[str]) -> list[str]:
    return [name for flag, name in VECTOR_FLAGS if flag in flags]


def cpu_description() -> str:
    """Cores, CPU model and vector extensions: the part of the machine a table row can carry."""
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
    return f"{os.cpu_count()} cores ({cpu}; {extensions}{capped})"


def machine_description() -> str:
    """The CPU, OS, libc and Python: what a reader needs to compare machines."""
    libc = " ".join(platform.libc_ver())
    return f"{cpu_description()}, {platform.system()} {platform.release()}, {libc}, Python {platform.python_version()}"


def run_stamp() -> tuple[str, str]:
    """The UTC date and time of a run and the short commit it ran at."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=BENCHMARKS_MD.parent).stdout.strip() or "uncommitted"
    except OSError:
        commit = "unknown"
    return stamp, commit


def run_header(command: str, stamp: str, commit: str) -> str:
    """The Command, Date and Machine lines that open a run's figures."""
    return f"- Command: `{command}`\n- Date: {stamp} (commit {commit})\n- Machine: {machine_description()}"


def make_command(target: str, argv: Optional[list[str]] = None) -> str:
    """The make command that repeats a benchmark run with ARGV (default: this process's arguments)."""
    args = sys.argv[1:] if argv is None else argv
    return f"make {target}" + (f' ARGS="{" ".join(args)}"' if args else "")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark's child process: this project importable, Keras 2, TensorFlow quiet."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def timed(work: Callable[[], Any]) -> tuple[Any, dict]:
    """WORK's result, and the wall and CPU seconds (this process) it took."""
    cpu, started = time.process_time(), time.perf_counter()
    result = work()
    return result, {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu}


def load_text(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """The 1/5/15-minute load averages before and after a run: how shared the cores were."""
    return ("Load average (1/5/15 min) before: " + " / ".join(f"{x:.2f}" for x in before) + ", after: "
            + " / ".join(f"{x:.2f}" for x in after))


def add_no_write(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")


def publish(body: str, write: bool, name: str, title: str, command: str) -> None:
    """Print BODY and, with WRITE, put it in BENCHMARKS.md as section NAME (see :func:`write_section`)."""
    print(body)
    if write:
        write_section(name, title, body, command)


def section_pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)


def read_section(name: str) -> str:
    """The current text of the section NAME ("" when BENCHMARKS.md has none)."""
    found = section_pattern(name).search(BENCHMARKS_MD.read_text()) if BENCHMARKS_MD.exists() else None
    return found.group(0) if found else ""


def write_section(name: str, title: str, body: str, command: str, stamped: bool = True) -> None:
    """Replace (or append) section NAME with BODY; COMMAND reproduces it as a user types it. A section whose rows
    come from several runs (STAMPED false) names the command only: each row carries its own date and machine."""
    header = run_header(command, *run_stamp()) if stamped else f"- Command: `{command}`"
    section = f"<!-- bench:{name} -->\n## {title}\n\n{header}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = section_pattern(name)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)


def first_cell(row: str) -> str:
    return row.strip().strip("|").split("|")[0].strip()


def table_rows(text: str) -> list[str]:
    """The rows of the first markdown table in TEXT, its header and rule left out."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    return list(itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2:]))


def put_row(rows: list[str], row: str, rank: Callable[[str], Any]) -> list[str]:
    """ROWS with ROW replacing the row of the same first cell (or added), ordered by RANK of the first cell."""
    kept = [r for r in rows if first_cell(r) != first_cell(row)]
    return sorted([*kept, row], key=lambda r: rank(first_cell(r)))
