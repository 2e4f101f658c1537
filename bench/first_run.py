"""The newcomer's first `make run`: a clean clone, no synthetic data yet, then the re-run.

    make bench-first-run            # python -m bench.first_run
    make bench-first-run ARGS="--fresh-venv"   # and the venv built from nothing first, as on a new machine

Clones HEAD into a temporary folder (reusing the cached venv unless --fresh-venv), runs `make run` there twice
and writes the wall time of each run and of each component to BENCHMARKS.md; the clone is deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import ROOT, load_text, make_command, write_section
from bench.scale import CHILD_RUN, child_summary

FIRST_RUN_BAR_S, RERUN_BAR_S = 240, 40  # pipeline time after the venv: a first run in minutes, a re-run in seconds


def build_venv(clone: Path, env: dict[str, str]) -> float:
    """`make venv` in the clone under ENV; returns its wall seconds."""
    started = time.time()
    subprocess.run(["make", "-s", "venv"], cwd=clone, env=env, check=True)
    return time.time() - started


def timed_run(clone: Path, extra: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """`make run` in the clone; returns wall seconds and the run summary's steps and gate."""
    argv = ["--output-dir", str(clone / "outputs"), *extra]
    started = time.time()
    # `make run` is `$(PY) local_runner.py $(ARGS)`; the summary is read from the same call in Python.
    build_venv(clone, env)
    venv_python = subprocess.run(["python3", "scripts/setup_env.py", "--print-path"], cwd=clone, check=True,
                                 capture_output=True, text=True, env=env).stdout.strip() + "/bin/python"
    summary = child_summary([venv_python, "-c", CHILD_RUN, json.dumps(argv)], "the run", cwd=clone,
                            env={**env, "PYTHONPATH": str(clone), "TF_USE_LEGACY_KERAS": "1"})
    return time.time() - started, summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-arg", action="append", default=[], help="extra local_runner flag (repeatable)")
    parser.add_argument("--fresh-venv", action="store_true",
                        help="first build the venv from nothing (temporary GENRE_VENV_CACHE, PIP_NO_CACHE_DIR=1), timed")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    venv_seconds = None
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="genre-first-run-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        if args.fresh_venv:
            env.update(GENRE_VENV_CACHE=str(Path(tmp) / "venv-cache"), PIP_NO_CACHE_DIR="1")
            venv_seconds = build_venv(clone, env)
        first_wall, first = timed_run(clone, args.run_arg, env)
        again_wall, again = timed_run(clone, args.run_arg, env)
        shutil.rmtree(clone / "outputs", ignore_errors=True)

    load_after = os.getloadavg()

    def cell(run: dict, name: str) -> str:
        step = run["steps"].get(name, {})
        return f"{step.get('seconds', '-')} s ({step.get('outcome', '-')})"

    gate, again_gate = first.get("gate") or {}, again.get("gate") or {}
    body = "\n\n".join([
        f"The venv, built from nothing (`make venv` with an empty venv cache and pip's download cache off: every wheel "
        f"downloaded and installed): **{venv_seconds:.0f} s** wall, before the first run." if venv_seconds is not None
        else "The venv was reused from the machine's cache (`--fresh-venv` times building it from nothing).",
        f"First run (synthetic set generated, every component executed): **{first_wall:.0f} s** wall. "
        f"Re-run (same command): **{again_wall:.0f} s** wall. Bars: the first run under {FIRST_RUN_BAR_S} s "
        f"({'met' if first_wall < FIRST_RUN_BAR_S else 'NOT met'}), the re-run under {RERUN_BAR_S} s "
        f"({'met' if again_wall < RERUN_BAR_S else 'NOT met'}).",
        f"{load_text(load_before, load_after)} (the runs themselves raise it).",
        "\n".join(["| component | first run | re-run |", "|---|---|---|",
                   *(f"| {name} | {cell(first, name)} | {cell(again, name)} |" for name in first["steps"])]),
        f"The first run's gate: clip accuracy {gate.get('candidate_clip_accuracy', float('nan')):.3f} over "
        f"{gate.get('candidate_clips', 0):.0f} held-out clips ({gate.get('split_protocol', '?')} protocol, "
        f"synthetic data), blessed: {gate.get('blessed')}. Synthetic-set generation is inside the first run's "
        "wall time (before the first component).",
        f"The re-run's gate: blessed: {again_gate.get('blessed')}; "
        f"{'; '.join(again_gate.get('reasons') or []) or 'no reason recorded'}. A re-run with nothing changed "
        "takes every component up to Trainer from the cache; the Evaluator runs again because the resolver now "
        "finds the first run's blessed model as its baseline.",
    ])
    write_section("first-run", "The first `make run` on a clean clone, and its re-run", body,
                  make_command("bench-first-run", argv))
    print(body)


if __name__ == "__main__":
    main()
