"""Synthetic default set: seconds of audio generated per second, on one core.

    python -m bench.synthetic [--repeats N] [--baseline-ref REF]

Generates the default set into a temporary folder pinned to one core (BLAS/OpenMP threads set to 1 before numpy
loads). On a shared machine wall time depends on the load; CPU time is the cost on one core. For comparison, the
generator at ``--baseline-ref`` (from git) renders one track per genre, and the set's re-use check is timed.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported (below, lazily)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

from bench.report import add_no_write, load_text, publish, timed  # noqa: E402
from config.settings import PROJECT_ROOT, SyntheticConfig  # noqa: E402
from pipeline.flags import whole_number  # noqa: E402

GOAL = 500.0
# The generator before its vectorised rewrite: per-note Python synthesis.
BASELINE_REF = "7e83bbc"


def load_baseline(ref: str):
    """synthetic/generator.py as it was at ``ref`` (git), as a module; None without git or that commit."""
    try:
        source = subprocess.run(["git", "show", f"{ref}:synthetic/generator.py"], capture_output=True, text=True,
                                cwd=PROJECT_ROOT, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    # The settings module has moved since older revisions; the generator's code is what is compared.
    source = source.replace("from pipeline.config import", "from config.settings import")
    spec = importlib.util.spec_from_loader("synthetic_generator_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{ref}:synthetic/generator.py", "exec"), module.__dict__)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=whole_number(1), default=3,
                        help="generations of the whole set (default: %(default)s)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF,
                        help="git revision of the generator to compare with (default: %(default)s)")
    add_no_write(parser)
    args = parser.parse_args(argv)
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core

    from synthetic.generator import RECIPES, generate, is_complete, render_track

    s = SyntheticConfig()
    rate, genres = s.sample_rate, list(RECIPES)
    render_track("blues", 0, 1.0, rate, 0)  # warm-up: lazy tables, not the work measured
    load_before = os.getloadavg()
    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench-synthetic-") as tmp:
            paths, r = timed(lambda: generate(Path(tmp), s.tracks_per_genre, s.seconds, s.seed, rate))
            r.update(audio=len(paths) * s.seconds, files=len(paths), mb=sum(p.stat().st_size for p in paths) / 1e6)
            runs.append(r)
            if i == 0:
                complete, reuse = timed(lambda: is_complete(tmp, s.tracks_per_genre, s.seconds, s.seed, rate))
                reuse_ms = reuse["wall"] * 1000
                assert complete, "a set just generated must be complete"
        print(f"run {i + 1}: {r['audio']:.0f} s of audio ({r['files']} files) in {r['wall']:.2f} s wall = "
              f"{r['audio'] / r['wall']:.0f}x real time; CPU {r['cpu']:.2f} s = {r['audio'] / r['cpu']:.0f}x", flush=True)

    def render_only(render: Callable) -> dict:
        """Render (no writing) track 0 of each genre with RENDER: the comparison in the same run."""
        _, r = timed(lambda: [render(genre, 0, s.seconds, rate, 0) for genre in genres])
        return {**r, "audio": len(genres) * s.seconds}

    new_render = render_only(render_track)
    baseline_module = load_baseline(args.baseline_ref)
    old_render = render_only(baseline_module.render_track) if baseline_module else None
    load_after = os.getloadavg()

    wall_speed = statistics.median(r["audio"] / r["wall"] for r in runs)
    cpu_speed = statistics.median(r["audio"] / r["cpu"] for r in runs)

    def row(label: str, r: dict) -> str:
        return (f"| {label} | {r['audio']:.0f} | {r['wall']:.2f} | {r['audio'] / r['wall']:.0f}x | {r['cpu']:.2f} | "
                f"{r['audio'] / r['cpu']:.0f}x |")

    rows = [row(f"generate the set, run {i + 1} (render + write)", r) for i, r in enumerate(runs)]
    rows.append(row("render only, track 0 of each genre", new_render))
    if old_render:
        rows.append(row(f"render only, track 0 of each genre, generator at {args.baseline_ref}", old_render))
    comparison = (f"The generator at `{args.baseline_ref}` renders {old_render['audio'] / old_render['cpu']:.0f}x real "
                  f"time (CPU) against {new_render['audio'] / new_render['cpu']:.0f}x now, measured on the same "
                  "tracks in this run." if old_render else
                  f"(No comparison: git revision {args.baseline_ref} is not available here.)")
    body = f"""
The default synthetic set ({s.tracks_per_genre} tracks x {len(genres)} genres x {s.seconds:g} s = {runs[0]['audio']:.0f} s of
audio, {rate} Hz 16-bit WAV, {runs[0]['mb']:.0f} MB), generated into a temporary folder on one core (CPU {cpu}:
sched_setaffinity, BLAS/OpenMP threads 1). {load_text(load_before, load_after)} (2 shared cores: wall time
includes waiting for the core; CPU time is the generator's own cost).

| work | audio s | wall s | audio s per wall s | CPU s | audio s per CPU s |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Median over {len(runs)} runs: **{cpu_speed:.0f}x real time per CPU second, {wall_speed:.0f}x per wall second**
(goal {GOAL:.0f}x on one core: {'met' if min(cpu_speed, wall_speed) >= GOAL else ('met in CPU time' if cpu_speed >= GOAL else 'not met')}).
{comparison} A re-run finds the set complete from its manifest (sizes checked, no audio read) in {reuse_ms:.1f} ms.
"""
    publish(body, not args.no_write, "synthetic", "Synthetic default set: generation speed (one core)",
            "python -m bench.synthetic")


if __name__ == "__main__":
    main()
