"""The newcomer's first `make run`: a clean clone, no synthetic data yet, then the re-run.

    make bench-first-run            # python -m bench.first_run

Clones this repository's HEAD into a temporary folder (the cached venv is reused, as on
any machine that built it once), runs `make run` there with its defaults, then runs it
again, and writes the wall time of each run and of each component (from the run summary)
to BENCHMARKS.md. The clone and its outputs are deleted afterwards.
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

from bench.report import write_section

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_CODE = ("import json, local_runner; s = local_runner.main({argv}); "
                "print('BENCH-SUMMARY ' + json.dumps({{k: s.get(k) for k in ('steps', 'seconds', 'gate')}}))")


def timed_run(clone: Path, extra: list[str]) -> tuple[float, dict]:
    """`make run` in the clone; returns wall seconds and the run summary's steps and gate."""
    argv = ["--output-dir", str(clone / "outputs"), *extra]
    started = time.time()
    # `make run` is `$(PY) local_runner.py $(ARGS)`; the summary is read from the same call in Python.
    subprocess.run(["make", "-s", "venv"], cwd=clone, check=True)
    venv_python = subprocess.run(["python3", "scripts/setup_env.py", "--print-path"], cwd=clone, check=True,
                                 capture_output=True, text=True).stdout.strip() + "/bin/python"
    out = subprocess.run([venv_python, "-c", SUMMARY_CODE.format(argv=argv)], cwd=clone, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(clone), "TF_USE_LEGACY_KERAS": "1"})
    wall = time.time() - started
    line = next((l for l in out.stdout.splitlines() if l.startswith("BENCH-SUMMARY ")), None)
    if out.returncode or line is None:
        raise SystemExit(f"the run failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return wall, json.loads(line[len("BENCH-SUMMARY "):])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-arg", action="append", default=[], help="extra local_runner flag (repeatable)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="genre-first-run-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        first_wall, first = timed_run(clone, args.run_arg)
        again_wall, again = timed_run(clone, args.run_arg)
        shutil.rmtree(clone / "outputs", ignore_errors=True)

    rows = [f"| {name} | {first['steps'].get(name, {}).get('seconds', '-')} s "
            f"({first['steps'].get(name, {}).get('outcome', '-')}) | "
            f"{again['steps'].get(name, {}).get('seconds', '-')} s ({again['steps'].get(name, {}).get('outcome', '-')}) |"
            for name in first["steps"]]
    gate = first.get("gate") or {}
    again_gate = again.get("gate") or {}
    body = "\n".join([
        f"First run (synthetic set generated, every component executed): **{first_wall:.0f} s** wall. "
        f"Re-run (same command): **{again_wall:.0f} s** wall.",
        "",
        "| component | first run | re-run |", "|---|---|---|", *rows,
        "",
        f"The first run's gate: clip accuracy {gate.get('candidate_clip_accuracy', float('nan')):.3f} over "
        f"{gate.get('candidate_clips', 0):.0f} held-out clips ({gate.get('split_protocol', '?')} protocol, "
        f"synthetic data), blessed: {gate.get('blessed')}. Synthetic-set generation is inside the first run's "
        "wall time (before the first component).",
        "",
        f"The re-run's gate: blessed: {again_gate.get('blessed')}; "
        f"{'; '.join(again_gate.get('reasons') or []) or 'no reason recorded'}. A re-run with nothing changed "
        "takes every component up to Trainer from the cache; the Evaluator runs again because the resolver now "
        "finds the first run's blessed model as its baseline.",
    ])
    write_section("first-run", "The first `make run` on a clean clone, and its re-run", body,
                  "make bench-first-run")
    print(body)


if __name__ == "__main__":
    main()
