"""The tagging pipeline: file chunks -> RunInference (decode + classify) -> record shards -> merged outputs.

One straight chain (no side inputs, tagged outputs, sinks or sources), so every runner, Dask included, computes
the same rows. The launcher makes the batches (``with_no_batching``): Beam's BatchElements emits its last
batch from ``finish_bundle``, which the Dask runner drops.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from config.settings import AudioConfig
from pipeline import beam_args as runners
from tagging import files as files_lib, outputs, playlists, write_back, zero_shot
from tagging.model import GenreSignatureHandler, ModelRef


@dataclasses.dataclass
class TagJob:
    source: str                    # folder or glob of audio files
    out_dir: str
    model: ModelRef
    audio: AudioConfig = dataclasses.field(default_factory=AudioConfig)
    beam_args: list[str] = dataclasses.field(default_factory=lambda: list(runners.IN_PROCESS))
    batch_size: int = 8
    parquet: bool = True
    dask_partitions: Optional[int] = None  # None: one per chunk, at most 64
    tf_threads: Optional[int] = None       # TensorFlow threads per worker process (None: TF's default)
    write_tags: bool = False               # False: only plan the tags (write_plan.jsonl), touch no file
    genre_field: bool = False              # the genre into the standard genre field, not GENRE_PREDICTED


def _run_pipeline(chunks: list[list[tuple[str, str]]], job: TagJob, shard_dir: str) -> None:
    """The chain on the job's runner, until it finishes."""
    args = list(job.beam_args)
    if runners.is_dask(args) and not any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args):
        # Beam's Dask runner puts 128 elements in a partition by default: all chunks in one task.
        args.append(f"--dask_npartitions={max(1, min(len(chunks), job.dask_partitions or 64))}")
    handler = zero_shot.ZeroShotHandler if job.model.source == zero_shot.SOURCE else GenreSignatureHandler
    pipeline = beam.Pipeline(options=PipelineOptions(args))
    _ = (pipeline
         | "FileChunks" >> beam.Create(chunks)
         | "DecodeAndClassify" >> RunInference(
             handler(job.model, job.audio, job.tf_threads).with_no_batching())
         | "ToRecord" >> beam.Map(outputs.to_record)
         | "WriteShards" >> beam.ParDo(outputs.WriteShards(shard_dir)))
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)  # the Dask runner's: close it, or it retries at exit
        if client is not None:
            client.close()


@contextlib.contextmanager
def _progress(shard_dir: str, total: int, emit: Callable[[str], None], every: float = 2.0) -> Iterator[None]:
    """Prints ``[tag] N/M files`` from the shards while the block runs (every runner writes them)."""
    stop, started = threading.Event(), time.time()

    def report() -> None:
        last = -1
        while not stop.wait(every):
            done = min(outputs.count_shard_records(shard_dir), total)
            if done != last:
                elapsed = time.time() - started
                emit(f"[tag] {done}/{total} files ({100 * done / max(1, total):.0f}%), {elapsed:.0f} s, "
                     f"{done / elapsed:.1f} files/s")
                last = done

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def run(job: TagJob, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Tag every audio file of ``job.source``; returns the summary (also written to summary.json)."""
    listing = files_lib.list_audio(job.source)
    chunks = files_lib.chunks(listing.files, job.batch_size)
    runner = runners.runner_of(job.beam_args)
    log(f"[tag] {len(listing.files)} audio files to decode under {job.source} ({len(listing.quarantined)} entries "
        f"that are not readable files, {len(listing.excluded)} excluded); "
        f"model {job.model.path} (version {job.model.version}); runner {runner}")
    shard_dir = os.path.join(job.out_dir, f".shards-{uuid.uuid4().hex[:12]}")
    FileSystems.mkdirs(shard_dir)  # and --out, parents included
    started = time.time()
    try:
        if chunks:
            with _progress(shard_dir, len(listing.files), log):
                _run_pipeline(chunks, job, shard_dir)
        wall = time.time() - started
        records = outputs.read_shards(shard_dir) + [{"status": outputs.QUARANTINED, **q} for q in listing.quarantined]
        records.sort(key=lambda r: r["path"])
    finally:
        FileSystems.delete([shard_dir])
    missing = sorted({rel for _, rel in listing.files} - {r["path"] for r in records})
    if missing:  # never silently: a runner that loses elements must fail the run
        raise RuntimeError(f"{len(missing)} of {len(listing.files)} files have no row after the {runner} run "
                           f"(first: {missing[:5]}); the runner lost elements.")
    genres = next((r["scores"].keys() for r in records if r["status"] == outputs.TAGGED), ())
    summary = outputs.summarize(records, wall, list(genres), source=job.source, model_path=job.model.path,
                                model_version=job.model.version, model_source=job.model.source, runner=runner,
                                beam_args=list(job.beam_args), sample_rate=job.audio.sample_rate,
                                ignored_files=listing.ignored, excluded=listing.excluded)
    paths = outputs.write_outputs(job.out_dir, records, summary, parquet=job.parquet)
    log(f"[tag] {summary['files']['tagged']} tagged, {summary['files']['quarantined']} quarantined, "
        f"{summary['audio_seconds']:.0f} s of audio in {wall:.1f} s ({summary['audio_seconds_per_wall_second']}x "
        f"real time, {summary['files_per_second']} files/s). Outputs: {', '.join(sorted(paths.values()))}")
    for q in summary["quarantined"]:
        log(f"[tag]   quarantined {q['path']}: {q['reason']} ({q['detail']})")
    if "://" in job.out_dir:
        log("[tag] playlists and the tag plan need a local --out folder; none written")
        return summary
    rows = [r for r in records if r["status"] == outputs.TAGGED]
    path_of = {rel: path for path, rel in listing.files}.__getitem__
    summary["playlists"] = playlists.write(rows, path_of, job.out_dir)
    summary["write_tags"] = write_back.apply(rows, path_of, job.out_dir, write=job.write_tags,
                                             genre_field=job.genre_field, log=log)
    outputs.write_summary(job.out_dir, summary)
    return summary


def tag(source: str, out_dir: str, model: ModelRef, beam_args: Optional[Sequence[str]] = None,
        **kwargs: Any) -> dict[str, Any]:
    """Library entry point: ``tag("music/", "tags/", latest_version("outputs/serving/genre"))``."""
    job = TagJob(source=source, out_dir=out_dir, model=model,
                 beam_args=list(beam_args) if beam_args else list(runners.IN_PROCESS), **kwargs)
    return run(job)
