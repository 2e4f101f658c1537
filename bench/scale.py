"""Does the pipeline scale to a real music library in bounded memory? Peak memory and time per step at 1x-30x.

    make bench-scale                         # python -m bench.scale: 1x, 10x, 30x the default set's 200 tracks
    make bench-scale ARGS="--scales 1,10,30,50 --full-length-tracks 30 --model cnn --epochs 2"

Each scale is a synthetic library of equal-length tracks (plus, with ``--full-length-tracks``, 4-minute 44.1 kHz
stereo FLAC tracks) run through ``local_runner.main`` in a child process with a fresh output folder. Every
``--interval`` seconds the resident memory of the child and its Beam workers is summed from /proc and attributed to
the step running then (from the child's ``[step]`` console lines); time is each step's wall seconds per 1,000
tracks. Full-length tracks are also decoded ingestion's way and whole, each in its own child process.

Criteria: at the largest scale every step's peak memory and time per track at most 25 % above the smallest's, and
ingestion's decode of full-length tracks at least 3x faster per track (CPU) than whole-track decoding. Projections
to 100,000 and 1,000,000 tracks are labelled as such. Writes the ``scale`` section of BENCHMARKS.md (``--no-write``:
print only) and ``<output-root>/scale.json``. Run it on an otherwise idle machine: 30x is 6,000 tracks.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from bench.report import ROOT, add_no_write, child_env, cpu_description, make_command, publish
from config.settings import MODEL_TYPES
from pipeline.flags import positive_number, whole_number

BASE_TRACKS_PER_GENRE = 20  # the default synthetic set: 20 tracks x 10 genres
GENRE_COUNT = 10
MIN_TRACKS_PER_GENRE = 3  # a stratified split needs a train, an eval and a test track per genre
PROJECTED_TRACKS = (100_000, 1_000_000)
TOLERANCE = 0.25  # of peak memory and of time per track, at the largest scale over the smallest
WINDOWED_SPEEDUP = 3.0
OUTSIDE = "(outside steps)"
SUMMARY_TAG = "BENCH-SUMMARY "
VERDICT = {True: "PASS", False: "FAIL", None: "not measured"}  # a criterion's passed

CHILD_RUN = """
import json, resource, sys
import local_runner
summary = local_runner.main(json.loads(sys.argv[1]))
print({tag!r} + json.dumps({{
    "steps": summary.get("steps", {{}}), "gate": summary.get("gate"),
    "files": (summary.get("data") or {{}}).get("files"), "span": (summary.get("data") or {{}}).get("span"),
    "transform": summary.get("transform"), "embedded": summary.get("embedded"),
    "self_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}}), flush=True)
""".format(tag=SUMMARY_TAG)

CHILD_DECODE = """
import json, resource, sys, time
import soundfile as sf
from audio import decode as audio_lib
from components.audio_example_gen import ingest
from config.settings import PipelineConfig
mode, model, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
cfg = PipelineConfig().with_model(model).audio
cpu, wall, decoded, source = time.process_time(), time.perf_counter(), 0, 0.0
for path in paths:
    source += sf.info(path).duration
    if mode == "whole":
        with open(path, "rb") as f:
            result = audio_lib.decode(f, cfg.sample_rate, cfg.max_clip_seconds)
    else:
        result = ingest.read_audio(path, cfg)  # the decoded windows, or the file's quarantine problem
    if not hasattr(result, "samples"):
        raise SystemExit(f"{{mode}} decode refused a full-length file: {{result.reason}} ({{result.detail}})")
    decoded += len(result.samples)
print({tag!r} + json.dumps({{"cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall,
    "decoded_seconds": decoded / cfg.sample_rate, "source_seconds": source, "tracks": len(paths),
    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
""".format(tag=SUMMARY_TAG)


# ----- what the child says: step boundaries --------------------------------------------------

STEP_LINE = re.compile(r"\[step\] (?P<name>[A-Za-z0-9_.-]+)(?P<mark> \.\.\.$|:)")


def step_event(line: str) -> Optional[tuple[str, str]]:
    """("start", NAME) for ``[step] NAME ...``, ("end", NAME) for ``[step] NAME: ...``, else None (heartbeats too)."""
    match = STEP_LINE.match(line.strip())
    return ("start" if match["mark"] == " ..." else "end", match["name"]) if match else None


def tagged_summary(lines: Sequence[str]) -> Optional[dict]:
    """The JSON a child process printed after SUMMARY_TAG on its last such line; None when it printed none."""
    line = next((line for line in reversed(lines) if line.startswith(SUMMARY_TAG)), None)
    return json.loads(line[len(SUMMARY_TAG):]) if line else None


def child_summary(command: list[str], what: str, **run) -> dict:
    """:func:`tagged_summary` of COMMAND run to its end; SystemExit with the tails of its output if it failed."""
    out = subprocess.run(command, capture_output=True, text=True, **run)
    summary = tagged_summary(out.stdout.splitlines())
    if out.returncode or summary is None:
        raise SystemExit(f"{what} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return summary


# ----- memory of a process tree ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Sample:
    time: float
    launcher_kib: int
    workers_kib: int

    @property
    def total_kib(self) -> int:
        return self.launcher_kib + self.workers_kib


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM, ...); 0 for a process that is gone."""
    try:
        found = re.search(rf"^{field}:\s*(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        found = None
    return int(found[1]) if found else 0  # gone, or a zombie without memory


def descendants(root_pid: int) -> list[int]:
    """Every live process below ``root_pid`` (children, their children, ...), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # the name in brackets may hold spaces
        children.setdefault(ppid, []).append(int(stat_path.parent.name))
    found = list(children.get(root_pid, []))
    for pid in found:  # breadth first: the list grows by each found process's children
        found.extend(children.get(pid, []))
    return found


def sample_tree(root_pid: int) -> Sample:
    """VmRSS of ``root_pid`` and, summed, of all its descendants, now."""
    return Sample(time.time(), status_kib(root_pid, "VmRSS"),
                  sum(status_kib(pid, "VmRSS") for pid in descendants(root_pid)))


@dataclasses.dataclass
class StepMemory:
    peak_kib: int = 0
    launcher_peak_kib: int = 0
    workers_peak_kib: int = 0
    samples: int = 0

    def add(self, sample: Sample) -> None:
        self.peak_kib = max(self.peak_kib, sample.total_kib)
        self.launcher_peak_kib = max(self.launcher_peak_kib, sample.launcher_kib)
        self.workers_peak_kib = max(self.workers_peak_kib, sample.workers_kib)
        self.samples += 1


def attribute(samples: Iterable[Sample], events: Sequence[tuple[float, str, str]]) -> dict[str, StepMemory]:
    """Each sample to the step running at its time, else OUTSIDE. Steps run from their time-ordered start and end
    EVENTS; a step with no end line ends where the next starts (or never)."""
    intervals: list[tuple[str, float, float]] = []
    open_step: Optional[tuple[str, float]] = None
    for at, kind, name in events:
        if open_step and (kind == "start" or open_step[0] == name):
            intervals.append((*open_step, at))
            open_step = None
        if kind == "start":
            open_step = (name, at)
    intervals += [(*open_step, float("inf"))] if open_step else []
    memory: dict[str, StepMemory] = {name: StepMemory() for name, _, _ in intervals}
    for sample in samples:
        step = next((name for name, start, end in intervals if start <= sample.time <= end), OUTSIDE)
        memory.setdefault(step, StepMemory()).add(sample)
    return memory


# ----- one measured pipeline run --------------------------------------------------------------

@dataclasses.dataclass
class MeasuredRun:
    label: str
    tracks: int
    wall_seconds: float
    steps: dict[str, dict]  # step -> seconds, outcome, peak_mib, launcher_peak_mib, workers_peak_mib, samples
    launcher_hwm_mib: float
    children_maxrss_mib: float
    files: Optional[dict] = None
    work: Optional[dict] = None  # what the run's summary says each step did: span, transform, embedded


def measure_run(label: str, tracks: int, argv: list[str], interval: float, log_dir: Path) -> MeasuredRun:
    """``local_runner.main(argv)`` in a child process, its process tree's memory sampled every ``interval`` s."""
    log_dir.mkdir(parents=True, exist_ok=True)
    events: list[tuple[float, str, str]] = []
    lines: list[str] = []
    stderr_path = log_dir / f"{label}.stderr"
    with open(stderr_path, "w") as stderr:
        started = time.time()
        child = subprocess.Popen([sys.executable, "-c", CHILD_RUN, json.dumps(argv)], cwd=ROOT, env=child_env(),
                                 stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)

        def read_console() -> None:
            for line in child.stdout:
                if event := step_event(line):
                    events.append((time.time(), *event))
                lines.append(line.rstrip("\n"))
                del lines[:-200]  # the tail is enough for a failure's story and the summary line

        reader = threading.Thread(target=read_console, name="child-console", daemon=True)
        reader.start()
        samples = []
        try:
            while child.poll() is None:
                samples.append(sample_tree(child.pid))
                time.sleep(interval)
        except BaseException:  # Ctrl-C here: the run stops as on its own console (its KeyboardInterrupt path)
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
        reader.join(timeout=30)
    wall = time.time() - started
    (log_dir / f"{label}.console").write_text("\n".join(lines) + "\n")
    summary = tagged_summary(lines)
    if child.returncode or summary is None:
        stderr_tail = stderr_path.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"The {label} run failed (exit code {child.returncode}); its console ends:\n"
                         + "\n".join(lines[-30:]) + f"\nand its stderr ({stderr_path}):\n" + "\n".join(stderr_tail))
    memory = attribute(samples, events)
    outside = round(wall - sum(r.get("seconds", 0.0) for r in summary["steps"].values()), 1)
    steps: dict[str, dict] = {}
    for name, record in {**summary["steps"], OUTSIDE: {"seconds": outside}}.items():
        m = memory.get(name, StepMemory())
        steps[name] = {"seconds": record.get("seconds"), "outcome": record.get("outcome", "-"), "samples": m.samples,
                       "peak_mib": m.peak_kib / 1024, "launcher_peak_mib": m.launcher_peak_kib / 1024,
                       "workers_peak_mib": m.workers_peak_kib / 1024}
    return MeasuredRun(label, tracks, round(wall, 1), steps, summary["self_maxrss_kib"] / 1024,
                       summary["children_maxrss_kib"] / 1024, summary.get("files"),
                       {k: summary.get(k) for k in ("span", "transform", "embedded")})


def measure_decode(mode: str, model: str, paths: Sequence[Path]) -> dict:
    """CPU and wall seconds, audio returned and peak memory of decoding PATHS one way, in a fresh child process."""
    return child_summary([sys.executable, "-c", CHILD_DECODE, mode, model, json.dumps([str(p) for p in paths])],
                         f"decoding the full-length tracks ({mode})", cwd=ROOT, env=child_env())


# ----- criteria and projections (pure) --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Criterion:
    name: str
    passed: Optional[bool]  # None: not measurable in this run
    detail: str


def compared_steps(base: MeasuredRun, top: MeasuredRun) -> list[str]:
    """Steps executed (not cached, not skipped) in both runs, in the top run's order; OUTSIDE last."""
    def executed(run: MeasuredRun, name: str) -> bool:
        step = run.steps.get(name)
        return bool(step) and (name == OUTSIDE or step["outcome"] == "executed") and step["samples"] > 0
    return [name for name in top.steps if executed(top, name) and executed(base, name)]


def per_thousand(seconds: Optional[float], tracks: int) -> Optional[float]:
    return None if seconds is None or tracks <= 0 else seconds / tracks * 1000


def _scaling_criterion(name: str, base: MeasuredRun, top: MeasuredRun, steps: list[str],
                       value: Callable[[MeasuredRun, str], Optional[float]], digits: int, unit: str) -> Criterion:
    """Passed when no step of STEPS has a VALUE at TOP more than TOLERANCE above its VALUE at BASE."""
    if top.tracks <= base.tracks:
        return Criterion(name, None, "needs two scales of different size")
    over = []
    for s in steps:
        b, t = value(base, s), value(top, s)
        if b is not None and t is not None and t > b * (1 + TOLERANCE):
            over.append(f"{s} {t:.{digits}f} vs {b:.{digits}f} {unit}")
    return Criterion(name, not over, "over: " + "; ".join(over) if over else f"{len(steps)} steps compared, none over")


def memory_criterion(base: MeasuredRun, top: MeasuredRun) -> Criterion:
    return _scaling_criterion(f"peak memory of every step at {top.label} within {TOLERANCE:.0%} of {base.label}",
                              base, top, compared_steps(base, top), lambda run, s: run.steps[s]["peak_mib"], 0, "MiB")


def time_criterion(base: MeasuredRun, top: MeasuredRun) -> Criterion:
    return _scaling_criterion(
        f"time per track of every step at {top.label} at most {TOLERANCE:.0%} above {base.label} (linear or better)",
        base, top, [s for s in compared_steps(base, top) if s != OUTSIDE],
        lambda run, s: per_thousand(run.steps[s]["seconds"], run.tracks), 1, "s per 1,000 tracks")


def decode_criterion(whole: Optional[dict], ingestion: Optional[dict]) -> Criterion:
    name = (f"full-length tracks: ingestion's decode at least {WINDOWED_SPEEDUP:g}x faster per track than whole-track "
            "decoding")
    if not whole or not ingestion:
        return Criterion(name, None, "no full-length tracks in this run")
    speedup = (whole["cpu_seconds"] / whole["tracks"]) / max(ingestion["cpu_seconds"] / ingestion["tracks"], 1e-9)
    return Criterion(name, speedup >= WINDOWED_SPEEDUP, f"{speedup:.2f}x (CPU seconds per track)")


def memory_slope_mib_per_track(points: Sequence[tuple[int, float]]) -> float:
    """Peak MiB per added track between the two largest libraries (0 for a flat or falling one, or one library): fixed
    buffers (the shuffle buffer, Beam's batches) fill between the small libraries, growth that does not continue."""
    if len(points) < 2:
        return 0.0
    (n0, m0), (n1, m1) = sorted(points)[-2:]
    return max(0.0, (m1 - m0) / (n1 - n0)) if n1 > n0 else 0.0


def project_memory_mib(points: Sequence[tuple[int, float]], tracks: int) -> float:
    """Peak MiB at ``tracks``, from the largest measured library along :func:`memory_slope_mib_per_track`."""
    n1, m1 = max(points)
    return m1 + memory_slope_mib_per_track(points) * (tracks - n1)


def project_seconds(measured_seconds: float, measured_tracks: int, tracks: int) -> float:
    return measured_seconds / measured_tracks * tracks


# ----- the report -----------------------------------------------------------------------------

def _mib(value: Optional[float], spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def step_table(runs: Sequence[MeasuredRun]) -> list[str]:
    """Rows: steps; per run, peak MiB (launcher / workers) and seconds per 1,000 tracks."""
    steps = [s for s in dict.fromkeys(s for run in runs for s in run.steps) if s != OUTSIDE] + [OUTSIDE]
    head = "| step | " + " | ".join(f"{r.label}: peak MiB (launcher / workers) | {r.label}: s per 1,000 tracks"
                                    for r in runs) + " |"
    lines = [head, "|---|" + "---|---|" * len(runs)]
    for s in steps:
        cells = []
        for run in runs:
            step = run.steps.get(s)
            if not step:
                cells += ["-", "-"]
                continue
            peak = (f"{_mib(step['peak_mib'])} ({_mib(step['launcher_peak_mib'])} / {_mib(step['workers_peak_mib'])})"
                    if step["samples"] else "no sample (too short)")
            note = "" if step["outcome"] in ("executed", "-") else f" ({step['outcome'].split(' (')[0]})"
            cells += [peak + note, _mib(per_thousand(step["seconds"], run.tracks), ",.1f")]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def projection_table(runs: Sequence[MeasuredRun]) -> list[str]:
    top = max(runs, key=lambda r: r.tracks)
    lines = ["| step | MiB per 1,000 more tracks (slope) | "
             + " | ".join(f"projected peak MiB at {n:,} tracks | projected hours at {n:,} tracks"
                          for n in PROJECTED_TRACKS) + " |", "|---|---|" + "---|---|" * len(PROJECTED_TRACKS)]
    base = min(runs, key=lambda r: r.tracks)
    for s in compared_steps(base, top):
        points = [(r.tracks, r.steps[s]["peak_mib"]) for r in runs if s in r.steps and r.steps[s]["samples"]]
        cells = [f"{memory_slope_mib_per_track(points) * 1000:,.1f}"]
        for n in PROJECTED_TRACKS:
            seconds = top.steps[s]["seconds"]
            hours = None if s == OUTSIDE or seconds is None else project_seconds(seconds, top.tracks, n) / 3600
            cells += [_mib(project_memory_mib(points, n)), _mib(hours, ",.1f")]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def decode_lines(whole: dict, ingestion: dict) -> list[str]:
    rows = ["| decode | tracks | audio in the files (s) | audio returned (s) | CPU s per track | wall s per track "
            "| peak RSS (MiB) |", "|---|---|---|---|---|---|---|"]
    for name, m in (("whole-track (`audio.decode` of the whole file)", whole),
                    ("ingestion's (`ingest.read_audio`)", ingestion)):
        rows.append(f"| {name} | {m['tracks']} | {m['source_seconds']:,.0f} | {m['decoded_seconds']:,.0f} | "
                    f"{m['cpu_seconds'] / m['tracks']:.2f} | {m['wall_seconds'] / m['tracks']:.2f} | "
                    f"{m['maxrss_kib'] / 1024:,.0f} |")
    windowed = ingestion["decoded_seconds"] < 0.9 * ingestion["source_seconds"]
    rows += ["", "Ingestion's decode " + ("returned only windows of each track: windowed decoding." if windowed else
             "returned the whole of each track: there is no windowed decoding in this tree, so the two ways are "
             "the same work.")]
    return rows


def render(runs: Sequence[MeasuredRun], full: Optional[MeasuredRun], decode: Optional[tuple[dict, dict]],
           criteria: Sequence[Criterion], settings: dict, load: tuple[float, float], wall: float) -> str:
    parts = [
        f"CPU: {cpu_description()}. Load average (1 min) before / after: {load[0]:.2f} / "
        f"{load[1]:.2f}; {wall / 60:.0f} min wall in all.",
        "",
        f"Libraries: `<genre>/<Genre> Artist K/Album J/NN Title.wav`, {settings['track_seconds']:g} s tracks (mono, "
        f"22.05 kHz) at every scale; model `{settings['model']}`, {settings['epochs']} epochs, "
        f"`--until {settings['until']}` (few epochs: the figures are memory and time per track, not accuracy). "
        "Peak = largest sample of the summed resident memory of the run's process and its Beam workers while the "
        f"step ran (every {settings['interval']:g} s); time = the step's wall seconds per 1,000 tracks.",
        "",
        "| library | tracks | wall (s) | launcher VmHWM (MiB) | largest worker maxrss (MiB) |", "|---|---|---|---|---|",
        *[f"| {r.label} | {r.tracks:,} | {r.wall_seconds:,.0f} | {r.launcher_hwm_mib:,.0f} | "
          f"{r.children_maxrss_mib:,.0f} |" for r in [*runs, *([full] if full else [])]],
        "",
        *step_table(runs),
    ]
    if full:
        parts += ["", f"Full-length tracks ({settings['full_length_seconds']:g} s, 44.1 kHz stereo FLAC), "
                  "the same pipeline run:", "", *step_table([full])]
    if decode:
        parts += ["", "Decoding the full-length tracks, each way in its own child process:", "", *decode_lines(*decode)]
    parts += ["", "Criteria:", "", *[f"- **{VERDICT[c.passed]}**: {c.name} ({c.detail})" for c in criteria]]
    if len({r.tracks for r in runs}) > 1:
        parts += ["", "**Projections, not measurements**: peak memory extended along each step's slope between the "
                  "two largest libraries (a falling slope counts as flat); hours linear from the largest "
                  "library's time per track.", "", *projection_table(runs)]
    return "\n".join(parts)


# ----- driving it -----------------------------------------------------------------------------

def tracks_per_genre(scale: float) -> int:
    return max(MIN_TRACKS_PER_GENRE, round(BASE_TRACKS_PER_GENRE * scale))


def parse_scales(text: str) -> list[float]:
    try:
        scales = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        scales = []
    if not scales or min(scales) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive scales of the 200-track set, like 1,10,30")
    return scales


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=parse_scales, default=parse_scales("1,10,30"),
                        help="library sizes as multiples of the default set's 200 tracks (default: 1,10,30)")
    parser.add_argument("--track-seconds", type=positive_number, default=6.0,
                        help="length of every track of the scaled libraries (default: %(default)s)")
    parser.add_argument("--full-length-tracks", type=whole_number(0), default=30,
                        help="full-length tracks (3 a genre at least for the splits; 0: none; default: %(default)s)")
    parser.add_argument("--full-length-seconds", type=positive_number, default=240.0, help="(default: %(default)s)")
    parser.add_argument("--model", choices=MODEL_TYPES, default="cnn", help="(default: %(default)s)")
    parser.add_argument("--epochs", type=whole_number(1), default=2,
                        help="few: the figures are memory and time per track (default: %(default)s)")
    parser.add_argument("--until", choices=("validate", "train", "push"), default="push",
                        help="where each run stops (default: %(default)s)")
    parser.add_argument("--tracks-per-album", type=whole_number(1), default=2, help="(default: %(default)s)")
    parser.add_argument("--albums-per-artist", type=whole_number(1), default=2, help="(default: %(default)s)")
    parser.add_argument("--interval", type=positive_number, default=0.25, help="memory sampling period, s (default: 0.25)")
    parser.add_argument("--output-root", type=Path, default=ROOT / "outputs" / "bench-scale",
                        help="libraries, runs and scale.json go here (default: %(default)s)")
    parser.add_argument("--run-arg", action="append", default=[], help="extra local_runner flag (repeatable)")
    parser.add_argument("--grow", type=whole_number(0), default=0, metavar="TRACKS",
                        help="instead of the scales: a library of TRACKS tracks, then 1 %% more, run incrementally and "
                        "with --full (writes the section 'A library that grows')")
    add_no_write(parser)
    args = parser.parse_args(argv)
    if 0 < args.full_length_tracks < MIN_TRACKS_PER_GENRE * GENRE_COUNT:
        parser.error(f"--full-length-tracks: 0, or at least {MIN_TRACKS_PER_GENRE * GENRE_COUNT} "
                     f"({MIN_TRACKS_PER_GENRE} a genre for a train, an eval and a test track)")
    return args


def _library_run(args: argparse.Namespace, label: str, library: str, per_genre: int, seconds: float,
                 **layout) -> tuple[MeasuredRun, list[Path]]:
    """A fresh pipeline run measured on the synthetic library LIBRARY, generated under --output-root; and its tracks."""
    from synthetic.generator import generate_library

    def progress(done: int, total: int) -> None:
        if done % 200 == 0 or done == total:
            print(f"[bench-scale] {library}: {done}/{total} tracks written", flush=True)

    root = args.output_root / "libraries" / library
    paths = generate_library(root, per_genre, seconds, progress=progress, **layout)
    tracks, run_dir = len(paths), args.output_root / "runs" / label
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh output folder: every step executes
    argv = ["--data-root", str(root), "--output-dir", str(run_dir), "--model", args.model,
            "--epochs", str(args.epochs), "--until", args.until, *args.run_arg]
    print(f"[bench-scale] {label}: {tracks:,} tracks, python local_runner.py {' '.join(argv)}", flush=True)
    run = measure_run(label, tracks, argv, args.interval, args.output_root / "logs")
    print(f"[bench-scale] {label}: {run.wall_seconds:,.0f} s", flush=True)
    return run, paths


GROWN_STEPS = ("AudioExampleGen", "StatisticsGen", "Transform")  # what the incremental goal weighs
GROWTH_GOAL = 0.25  # of the --full rebuild's time in those steps


def _linked(paths: Iterable[Path], source: Path, library: Path) -> None:
    for path in paths:
        target = library / path.relative_to(source)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)


def grow(args: argparse.Namespace) -> tuple[list[MeasuredRun], Criterion]:
    """A library of ``--grow`` tracks run from scratch, then 1 % more tracks run again in the same output folder
    (incremental) and with ``--full`` (a rebuild): the runs and the growth criterion."""
    from synthetic.generator import generate_library
    per_genre = max(MIN_TRACKS_PER_GENRE, args.grow // GENRE_COUNT)
    grown = per_genre + max(1, round(per_genre * 0.01))  # a genre's tracks after the growth
    source = args.output_root / "libraries" / f"grow-{grown}x{GENRE_COUNT}-{args.track_seconds:g}s"
    paths = generate_library(source, grown, args.track_seconds, tracks_per_album=args.tracks_per_album,
                             albums_per_artist=args.albums_per_artist)
    added = {p for g in range(GENRE_COUNT) for p in paths[g * grown + per_genre:(g + 1) * grown]}
    library, run_dir = args.output_root / "libraries" / "grow", args.output_root / "runs" / "grow"
    for folder in (library, run_dir):
        shutil.rmtree(folder, ignore_errors=True)
    _linked([p for p in paths if p not in added], source, library)
    argv = ["--data-root", str(library), "--output-dir", str(run_dir), "--model", args.model, "--epochs",
            str(args.epochs), "--until", args.until, *args.run_arg]
    runs = [measure_run("first run", len(paths) - len(added), argv, args.interval, args.output_root / "logs")]
    _linked(added, source, library)
    for label, extra_argv in (("incremental re-run", []), ("--full rebuild", ["--full"])):
        print(f"[bench-scale] {label}: {len(paths):,} tracks", flush=True)
        runs.append(measure_run(label, len(paths), argv + extra_argv, args.interval, args.output_root / "logs"))
    return runs, growth_criterion(runs)


def growth_criterion(runs: Sequence[MeasuredRun]) -> Criterion:
    """GROWN_STEPS' seconds in the incremental re-run (``runs[1]``) against the rebuild's (``runs[2]``)."""
    spent = [sum(r.steps.get(s, {}).get("seconds") or 0.0 for s in GROWN_STEPS) for r in runs]
    return Criterion(
        f"{' + '.join(GROWN_STEPS)} of the incremental re-run at most {GROWTH_GOAL:.0%} of the --full rebuild's",
        spent[1] <= GROWTH_GOAL * spent[2], f"{spent[1]:,.0f} s against {spent[2]:,.0f} s: {spent[1] / spent[2]:.0%}")


def growth_table(runs: Sequence[MeasuredRun]) -> list[str]:
    """Rows: the runs of :func:`grow`; the work each step did, and each step's wall seconds."""
    steps = [s for s in dict.fromkeys(s for r in runs for s in r.steps) if s != OUTSIDE]
    head = ["run", "tracks", "files decoded", "segments ingested", "span(s) analysed / transformed",
            "segments embedded", *(f"{s} (s)" for s in steps), "wall (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        span, transform = (r.work or {}).get("span") or {}, (r.work or {}).get("transform") or {}
        embedded = (r.work or {}).get("embedded")
        cells = [r.label, f"{r.tracks:,}", f"{span.get('decoded', '-'):,}" if span else "-",
                 f"{sum(span.get('segments', {}).values()):,}" if span else "-",
                 f"{transform.get('spans_analysed') or '-'} / {transform.get('spans_transformed') or '-'}",
                 embedded or "-",
                 *[_mib(r.steps.get(s, {}).get("seconds"), ",.1f") + ("" if r.steps.get(s, {}).get("outcome") in
                   ("executed", None) else " (cached)") for s in steps], f"{r.wall_seconds:,.0f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def main(argv: Optional[list[str]] = None) -> str:
    args = parse_args(argv)
    if args.grow:
        return main_grow(args, argv)
    load_before, started = os.getloadavg()[0], time.time()
    layout = dict(tracks_per_album=args.tracks_per_album, albums_per_artist=args.albums_per_artist)
    runs = [_library_run(args, f"{scale:g}x", f"{scale:g}x-{args.track_seconds:g}s", tracks_per_genre(scale),
                         args.track_seconds, **layout)[0] for scale in args.scales]
    full, decode = None, None
    if args.full_length_tracks:
        full, paths = _library_run(args, "full-length", f"full-length-{args.full_length_seconds:g}s",
                                   args.full_length_tracks // GENRE_COUNT, args.full_length_seconds, sample_rate=44100,
                                   audio_format="flac", channels=2, tracks_per_album=1, albums_per_artist=1)
        decode = (measure_decode("whole", args.model, paths), measure_decode("ingestion", args.model, paths))
    base, top = runs[0], runs[-1]
    criteria = [memory_criterion(base, top), time_criterion(base, top), decode_criterion(*(decode or (None, None)))]
    settings = {k: getattr(args, k) for k in ("track_seconds", "model", "epochs", "until", "interval",
                                              "full_length_seconds")}
    body = render(runs, full, decode, criteria, settings, (load_before, os.getloadavg()[0]), time.time() - started)
    args.output_root.mkdir(parents=True, exist_ok=True)
    (args.output_root / "scale.json").write_text(json.dumps({
        "settings": settings, "runs": [dataclasses.asdict(r) for r in runs],
        "full_length": dataclasses.asdict(full) if full else None, "decode": decode,
        "criteria": [dataclasses.asdict(c) for c in criteria]}, indent=2))
    publish(body, not args.no_write, "scale", "Scaling to a music library: peak memory and time per step",
            make_command("bench-scale", argv))
    return body


def main_grow(args: argparse.Namespace, argv: Optional[list[str]]) -> str:
    load_before, started = os.getloadavg()[0], time.time()
    runs, criterion = grow(args)
    cold = "" if args.until == "push" else (" (no model is pushed, so the re-run's Trainer has no champion to "
                                            "warm-start from)")
    body = "\n".join([
        f"CPU: {cpu_description()}. Load average (1 min) before / after: {load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f}; {(time.time() - started) / 60:.0f} min wall in all.", "",
        f"A library of {runs[0].tracks:,} tracks (`<genre>/<Genre> Artist K/Album J/NN Title.wav`, "
        f"{args.track_seconds:g} s, mono, 22.05 kHz) run from scratch; then {runs[1].tracks - runs[0].tracks} tracks "
        f"added (1 %) and run again into the same output folder; then `--full` on the grown library. Model "
        f"`{args.model}`, {args.epochs} epochs, `--until {args.until}`{cold}. Work from each run's summary; seconds "
        "are the steps' wall seconds.", "", *growth_table(runs), "",
        f"- **{VERDICT[criterion.passed]}**: {criterion.name} ({criterion.detail})"])
    (args.output_root / "grow.json").write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=2))
    publish(body, not args.no_write, "scale-grow", "A library that grows: the incremental re-run against a rebuild",
            make_command("bench-scale", argv))
    return body


if __name__ == "__main__":
    main()
