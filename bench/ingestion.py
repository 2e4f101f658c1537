"""Ingestion throughput: seconds of audio turned into tf.Examples per wall-clock second.

    python -m bench.ingestion [--data-root DIR] [--repeats N]      (make bench-ingest)
    python -m bench.ingestion --formats [--data-root DIR]           (make bench-ingest ARGS=--formats)

Runs AudioExampleGen's executor as TFX runs it (Executor.Do, the pipeline's Beam args) on the real GTZAN clips
and compares with a plain single-process ``librosa.load`` loop over the same files. Wall time excludes imports;
CPU time includes the Beam workers.

``--formats`` measures audio/decode.py alone (its own section): a 44.1 kHz stereo minute in every container and
codec, decoded by libsndfile and FFmpeg (PyAV) where both read it, and a 4-minute track in ingestion's windows
against whole.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audio import decode as audio_lib
from bench.real_data import DEFAULT_DATA_ROOT
from bench.report import add_no_write, load_text, publish, timed
from synthetic.formats import encode
from config.settings import AUDIO_EXTENSIONS, PipelineConfig
from pipeline.beam_args import for_tfx

GOAL = 500.0
THREADED = ["--runner=DirectRunner", "--direct_running_mode=multi_threading", "--direct_num_workers=2"]


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_example_gen(root: str, config: PipelineConfig) -> dict:
    """One AudioExampleGen run over ROOT, in a temporary directory: its wall, CPU and what it wrote."""
    from tfx.types import standard_artifacts

    from components.audio_example_gen.component import AudioExampleGen
    from components.audio_example_gen.executor import Executor
    from components.audio_example_gen.quarantine import FILES_FILE, SUMMARY_FILE, AudioQuarantine

    component = AudioExampleGen(input_base=root, pipeline_config_json=config.to_json())
    examples, report = standard_artifacts.Examples(), AudioQuarantine()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        out = Path(tmp)
        examples.uri, report.uri = str(out / "examples"), str(out / "quarantine")
        executor = Executor(Executor.Context(beam_pipeline_args=for_tfx(config.beam_args), tmp_dir=str(out / "tmp")))
        cpu, started = cpu_seconds(), time.perf_counter()
        executor.Do({}, {"examples": [examples], "quarantine": [report]}, dict(component.exec_properties))
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        summary = json.loads((out / "quarantine" / SUMMARY_FILE).read_text())
        files = [json.loads(line) for line in (out / "quarantine" / FILES_FILE).read_text().splitlines()]
        output_bytes = sum(p.stat().st_size for p in (out / "examples").rglob("*.gz"))
    return {"wall": wall, "cpu": cpu, "pipeline_wall": summary["wall_seconds"], "audio": summary["audio_seconds"],
            "files": summary["files"]["ingested"], "bad": summary["files"]["quarantined"],
            "segments": sum(s["segments"] for s in summary["splits"].values()),
            "decode_cpu": sum(f.get("decode_cpu_seconds", 0.0) for f in files), "output_mb": output_bytes / 1e6}


def run_empty_pipeline(beam_args: list[str], n: int) -> dict:
    """The runner's fixed cost: the same Beam args, n elements, no work (worker start-up, stages)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    cpu, started = cpu_seconds(), time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        _ = p | beam.Create(list(range(n))) | beam.Map(lambda x: x) | beam.combiners.Count.Globally()
    return {"wall": time.perf_counter() - started, "cpu": cpu_seconds() - cpu}


def run_librosa_loop(paths: list[Path], sample_rate: int) -> dict:
    import librosa

    librosa.load(str(paths[0]), sr=sample_rate, mono=True)  # warm-up: lazy imports, not file work
    audio_seconds, started = 0.0, time.perf_counter()
    for path in paths:
        y, _ = librosa.load(str(path), sr=sample_rate, mono=True)
        audio_seconds += len(y) / sample_rate
    return {"wall": time.perf_counter() - started, "audio": audio_seconds}


# (label, synthetic/formats.py format or a libsndfile (format, subtype), the readers that decode it)
BOTH = ("libsndfile", "ffmpeg")
DECODE_FORMATS = (
    ("WAV, 16-bit", ("WAV", "PCM_16"), BOTH), ("FLAC", ("FLAC", "PCM_16"), BOTH),
    ("Ogg Vorbis", ("OGG", "VORBIS"), BOTH), ("MP3", ("MP3", "MPEG_LAYER_III"), BOTH),
    ("AU, 16-bit", ("AU", "PCM_16"), BOTH), ("AIFF, 16-bit", ("AIFF", "PCM_16"), BOTH),
    ("Opus (.opus, 48 kHz)", "opus", BOTH),
    ("AAC (.m4a)", "aac", ("ffmpeg",)), ("ALAC (.m4a)", "alac", ("ffmpeg",)), ("WMA", "wma", ("ffmpeg",)),
    ("Opus (.webm)", "webm", ("ffmpeg",)), ("FLAC (.mka)", "mka", ("ffmpeg",)),
)
# Full-length formats (labels of DECODE_FORMATS) windowed by their first reader.
WINDOWED_FORMATS = ("FLAC", "WAV, 16-bit", "Ogg Vorbis", "AIFF, 16-bit", "ALAC (.m4a)")
SOURCE_RATE, DECODE_RATE = 44100, 22050
REPEATS = 7  # best of: the 2 cores are shared, and one decode takes a fraction of a second


def encoded_bytes(samples, fmt, tmp: Path) -> bytes:
    """SAMPLES (float, (n, 2) at SOURCE_RATE) in FMT: a synthetic/formats.py format name or a libsndfile (format, subtype)."""
    if isinstance(fmt, str):
        return encode(tmp / "clip", samples, SOURCE_RATE, fmt).read_bytes()
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", SOURCE_RATE, samples.shape[1], format=fmt[0], subtype=fmt[1]) as f:
        for i in range(0, len(samples), 1 << 15):  # libsndfile's Vorbis encoder fails on one long write
            f.write(samples[i:i + (1 << 15)])
    return buf.getvalue()


def real_stereo(paths: list[Path], seconds: float):
    """Real clips back to back, alternate clips left and right, at SOURCE_RATE for SECONDS."""
    n = int(seconds * SOURCE_RATE)
    channels = []
    for side in (0, 1):
        parts = []
        for path in paths[side::2]:
            part = audio_lib.decode(path.read_bytes(), SOURCE_RATE).samples
            parts.append(part.astype(np.float32) / 32768 if part.dtype == np.int16 else part)
            if sum(map(len, parts)) >= n:
                break
        channels.append(np.concatenate(parts)[:n])
    return np.clip(np.stack(channels, axis=1), -1.0, 1.0)


def decode_cpu(data: bytes, reader: str, wanted=None) -> tuple[float, int]:
    """CPU seconds of one decode() to DECODE_RATE, and the samples it returned."""
    decoded, took = timed(lambda: audio_lib.decode(data, DECODE_RATE, wanted=wanted, reader=reader))
    return took["cpu"], len(decoded.samples)


def decode_formats(paths: list[Path], root: Path, no_write: bool) -> None:
    """The --formats benchmark (module docstring)."""
    from components.audio_example_gen import segments
    from components.audio_example_gen.ingest import kept_segments
    load_before = os.getloadavg()
    cfg = PipelineConfig().audio
    minute, track = real_stereo(paths, 60.0), real_stereo(paths, 240.0)
    rows, windowed_rows, ratios, speedups = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        for label, fmt, readers in DECODE_FORMATS:
            data = encoded_bytes(minute, fmt, Path(tmp))
            speeds = {}
            for reader in readers:
                try:
                    speeds[reader] = 60.0 / min(decode_cpu(data, reader)[0] for _ in range(REPEATS))
                except Exception as e:  # a reader that cannot read the format is a finding, not a crash
                    speeds[reader] = None
                    print(f"{label}: {reader} fails: {e}")
            chosen = audio_lib.reader_for(data[:64])
            cells = [f"{speeds[r]:.0f}x" if speeds.get(r) else ("fails" if r in speeds else "-")
                     for r in ("libsndfile", "ffmpeg")]
            if speeds.get("libsndfile") and speeds.get("ffmpeg"):
                faster = max(speeds, key=lambda r: speeds[r])
                ratios.append(f"{label}: {faster} {speeds[faster] / min(speeds.values()):.2f}x"
                              + ("" if faster == chosen else f" (but read by {chosen})"))
            rows.append(f"| {label} | {len(data) / 1e6:.1f} | {cells[0]} | {cells[1]} | {chosen} |")
            print(rows[-1], flush=True)

        def wanted(num_samples: int):
            return segments.spans(num_samples, kept_segments(num_samples, cfg)[2], cfg.segment_samples)

        formats = {label: (fmt, readers[0]) for label, fmt, readers in DECODE_FORMATS}
        for label in WINDOWED_FORMATS:
            fmt, reader = formats[label]
            data = encoded_bytes(track, fmt, Path(tmp))
            # Whole and windowed interleaved, so both see the same moments of the shared cores; best of REPEATS.
            times = [(decode_cpu(data, reader)[0], *decode_cpu(data, reader, wanted)) for _ in range(REPEATS)]
            whole, windows, kept = map(min, zip(*times))
            speedups.append(whole / windows)
            windowed_rows.append(f"| {label} | {reader} | {whole:.3f} | {windows:.3f} | {kept / DECODE_RATE:.0f} | "
                                 f"{whole / windows:.1f}x |")
            print(windowed_rows[-1], flush=True)
    load_after = os.getloadavg()
    body = f"""
Source: the first 16 real GTZAN clips of `{root}`, alternate clips left and right, at 44.1 kHz stereo: a minute and a
4-minute track, written by `synthetic/formats.py` (PyAV) or libsndfile. Figures: `audio/decode.py`'s `decode()` to
mono at {DECODE_RATE} Hz (header checks, decoding, downmix, soxr HQ), CPU s of this process, best of {REPEATS}, forced to one
reader (`reader=`) where both read the format. {load_text(load_before, load_after)} (the 2 cores are shared).

| format (44.1 kHz stereo, 60 s) | MB | libsndfile: audio s per CPU s | FFmpeg (PyAV) | read by |
|---|---|---|---|---|
{chr(10).join(rows)}

| full-length track (240 s), ingestion's 20 kept 3-s segments | reader | whole: CPU s | windowed | kept s | speed-up |
|---|---|---|---|---|---|
{chr(10).join(windowed_rows)}

Faster reader where both read a format: {'; '.join(ratios)}. Windowed decoding of a full-length track: at least
**{min(speedups):.1f}x** faster than whole-file decoding (goal 3x: {'met' if min(speedups) >= 3.0 else 'not met'}).
"""
    publish(body, not no_write, "decode-formats", "Decoding per format: libsndfile and FFmpeg (PyAV)",
            "make bench-ingest ARGS=--formats")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingestion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT), help="audio root (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="executor runs (default: %(default)s)")
    parser.add_argument("--beam-arg", action="append", dest="beam_args", metavar="ARG",
                        help="Beam pipeline argument, repeatable (default: the pipeline's, PipelineConfig.beam_args)")
    add_no_write(parser)
    parser.add_argument("--formats", action="store_true",
                        help="measure decoding per format and reader instead (its own section)")
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    paths = sorted(p for p in root.glob("*/*") if p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS)
    if not paths:
        raise SystemExit(f"No audio files under {root}/<genre>/; pass --data-root (the real GTZAN clips live in "
                         f"{DEFAULT_DATA_ROOT}).")
    if args.formats:
        decode_formats(paths, root, args.no_write)
        return

    config = PipelineConfig()  # 22050 Hz, 3 s segments, hash split; beam_args: DirectRunner multi_processing
    if args.beam_args:
        config.beam_args = list(args.beam_args)
    load_before = os.getloadavg()
    runs = []
    for i in range(args.repeats):
        runs.append(r := run_example_gen(str(root), config))
        print(f"run {i + 1}: {r['audio']:.0f} s of audio in {r['wall']:.1f} s wall = {r['audio'] / r['wall']:.0f}x "
              f"real time (Beam pipeline {r['pipeline_wall']:.1f} s; CPU {r['cpu']:.1f} s)", flush=True)
    # Profiling aid: the same work with threads instead of worker processes (no process start-up).
    threaded = run_example_gen(str(root), dataclasses.replace(config, beam_args=THREADED))
    empty = run_empty_pipeline(config.beam_args, len(paths))
    baseline = run_librosa_loop(paths, config.audio.sample_rate)
    load_after = os.getloadavg()

    speeds = [r["audio"] / r["wall"] for r in runs]
    best = max(runs, key=lambda r: r["audio"] / r["wall"])
    base_speed = baseline["audio"] / baseline["wall"]
    def row(label: str, r: dict) -> str:
        return (f"| {label} | {r['audio']:.0f} | {r['wall']:.1f} | {r['audio'] / r['wall']:.0f}x | {r['cpu']:.1f} | "
                f"{r['audio'] / r['cpu']:.0f}x |")

    rows = "\n".join(row(f"AudioExampleGen run {i + 1}", r) for i, r in enumerate(runs))
    body = f"""
Real GTZAN clips: {len(paths)} files ({best['files']} ingested, {best['bad']} quarantined) from `{root}`,
{config.audio.sample_rate} Hz, {config.audio.segment_seconds:g} s segments ({best['segments']} examples,
{best['output_mb']:.0f} MB of gzipped TFRecords). Beam args: `{' '.join(config.beam_args)}`.
{load_text(load_before, load_after)} (the 2 cores are shared).

| ingestion | audio s | wall s | audio s per wall s | CPU s | audio s per CPU s |
|---|---|---|---|---|---|
{rows}
| plain `librosa.load` loop, 1 process | {baseline['audio']:.0f} | {baseline['wall']:.1f} | {base_speed:.0f}x | - | - |
{row("AudioExampleGen, `multi_threading`, 2 threads", threaded)}
| empty Beam pipeline, same args as the runs, {len(paths)} elements | - | {empty['wall']:.1f} | - | {empty['cpu']:.1f} | - |

Median AudioExampleGen throughput: **{statistics.median(speeds):.0f}x real time** (goal {GOAL:.0f}x:
{'met' if statistics.median(speeds) >= GOAL else 'not met'}); the librosa loop, which only decodes (no resampling
is needed at 22050 Hz) and writes nothing, runs at {base_speed:.0f}x in one process.
Where the time goes (fastest run): reading, decoding and checking the files took {best['decode_cpu']:.1f} s
of its {best['cpu']:.1f} s CPU (sum of per-file thread CPU times in files.jsonl). A Beam pipeline that does
nothing with the same runner settings costs {empty['wall']:.1f} s wall and {empty['cpu']:.1f} s CPU (starting
the worker processes, each importing Beam, and running the stages). The rest is tf.Example serialisation,
the TFRecord write ({best['output_mb']:.0f} MB) and moving the examples between Beam stages. On average the
run kept {best['cpu'] / best['wall']:.2f} of the 2 cores busy (CPU s / wall s); the rest of the time it was
waiting, for the cores other processes were using (see the load average) or in serial Beam stages.
The same ingestion with `--direct_running_mode=multi_threading` (threads in one process, no worker
processes to start) needs {threaded['cpu']:.1f} s CPU, {best['cpu'] - threaded['cpu']:.1f} s less than the fastest run.
"""
    publish(body, not args.no_write, "ingestion", "Ingestion (AudioExampleGen)", "make bench-ingest")


if __name__ == "__main__":
    main()
