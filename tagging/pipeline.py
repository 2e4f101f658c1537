"""The tagging pipeline: the files to tag -> RunInference (decode + classify) -> record shards -> merged outputs.

One straight chain (no side inputs, tagged outputs, sinks or sources), so every runner, Dask included, computes
the same rows. The launcher makes the batches (``with_no_batching``): Beam's BatchElements emits its last
batch from ``finish_bundle``, which the Dask runner drops.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from config.errors import UserError
from config.settings import AudioConfig
from local_run.lock import output_dir_lock
from pipeline import beam_args as runners
from tagging import files as files_lib, incremental, outputs, playlists, write_back, zero_shot
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
    retag: bool = False                    # tag every file again, whatever the results in out_dir hold


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
         | "DecodeAndClassify" >> RunInference(handler(job.model, job.audio, job.tf_threads).with_no_batching())
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


KILL_BEFORE_COMMIT = "GENRE_TAGGING_KILL_BEFORE_COMMIT"  # the test hook of run()


def run(job: TagJob, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Tag the new and changed files of ``job.source`` (all on a first run, with another model or ``job.retag``),
    keep the other rows of the results in ``job.out_dir`` (tagging/incremental.py) and replace them at once
    (outputs.commit), one run per local ``--out`` at a time (local_run's lock); returns the summary. Test hook:
    ``GENRE_TAGGING_KILL_BEFORE_COMMIT`` in the environment kills the process (SIGKILL) once its results are
    written, before they replace the earlier ones: a run killed at its worst moment."""
    with contextlib.ExitStack() as stack:
        if "://" not in job.out_dir:
            try:
                stack.enter_context(output_dir_lock(job.out_dir))
            except UserError as err:
                raise UserError(err.problem, where=f"tagging --out {job.out_dir}",
                                fix="wait for that run to finish, or tag into another --out folder.") from None
        return _run_locked(job, log)


def _run_locked(job: TagJob, log: Callable[[str], None]) -> dict[str, Any]:
    outputs.finish(job.out_dir)  # the results of a run killed while they replaced the earlier ones, completed
    listing = files_lib.list_audio(job.source)
    model_identity = incremental.identity(job.model, job.audio)
    index, retag = incremental.read_index(job.out_dir, model_identity, job.retag)
    changes = incremental.compare(listing.files, index, {q["path"] for q in listing.quarantined})
    chunks = files_lib.chunks(changes.to_infer, job.batch_size)
    runner = runners.runner_of(job.beam_args)
    log(f"[tag] {len(listing.files)} audio files under {job.source} ({len(listing.quarantined)} entries "
        f"that are not readable files, {len(listing.excluded)} excluded), {len(changes.to_infer)} to decode"
        + (f" (all: {retag})" if retag else f", {len(changes.carried)} kept from the earlier results" if index else "")
        + f"; model {job.model.path} (version {job.model.version}); runner {runner}")
    shard_dir = os.path.join(job.out_dir, f".shards-{uuid.uuid4().hex[:12]}")
    FileSystems.mkdirs(shard_dir)  # and --out, parents included
    started = time.time()
    try:
        if chunks:
            with _progress(shard_dir, len(changes.to_infer), log):
                _run_pipeline(chunks, job, shard_dir)
        wall = time.time() - started
        inferred = outputs.read_shards(shard_dir)
    finally:
        FileSystems.delete([shard_dir])
    missing = sorted({rel for _, rel in changes.to_infer} - {r["path"] for r in inferred})
    if missing:  # never silently: a runner that loses elements must fail the run
        raise RuntimeError(f"{len(missing)} of {len(changes.to_infer)} files have no row after the {runner} run "
                           f"(first: {missing[:5]}); the runner lost elements.")
    for record in inferred:
        record["size"], record["mtime_ns"] = changes.stats[record["path"]] or (None, None)
    records = sorted(inferred + incremental.carried_records(job.out_dir, changes)
                     + [{"status": outputs.QUARANTINED, **q} for q in listing.quarantined], key=lambda r: r["path"])
    genres = next((r["scores"].keys() for r in records if r["status"] == outputs.TAGGED), ())
    kinds = {k: changes.counts[k] for k in incremental.KINDS}
    kinds.update(quarantined=sum(r["status"] == outputs.QUARANTINED for r in records), inferred=len(inferred))
    summary = outputs.summarize(records, wall, list(genres), inferred=inferred, source=job.source,
                                model_path=job.model.path, model_version=job.model.version,
                                model_source=job.model.source, model_identity=model_identity, changes=kinds,
                                retag=retag, runner=runner, beam_args=list(job.beam_args),
                                sample_rate=job.audio.sample_rate, ignored_files=listing.ignored,
                                excluded=listing.excluded)
    staging = os.path.join(job.out_dir, outputs.STAGING)
    if "://" in job.out_dir:
        log("[tag] playlists and the tag plan need a local --out folder; none written")
    else:
        rows = [r for r in records if r["status"] == outputs.TAGGED]
        path_of = {rel: path for path, rel in listing.files}.__getitem__
        summary["playlists"] = {genre: os.path.join(job.out_dir, os.path.relpath(path, staging))
                                for genre, path in playlists.write(rows, path_of, staging).items()}
        summary["write_tags"] = write_back.apply(rows, path_of, job.out_dir, write=job.write_tags,
                                                 genre_field=job.genre_field, log=log, plan_dir=staging)
    outputs.write_outputs(staging, records, summary, parquet=job.parquet)
    if os.environ.get(KILL_BEFORE_COMMIT):
        os.kill(os.getpid(), signal.SIGKILL)
    outputs.commit(job.out_dir, staging)
    for q in summary["quarantined"]:
        log(f"[tag]   quarantined {q['path']}: {q['reason']} ({q['detail']})")
    log(f"[tag] {summary['files']['tagged']} tagged, {kinds['quarantined']} quarantined: " + ", ".join(
        f"{kinds[k]} {k}" for k in incremental.KINDS) + f"; {len(inferred)} decoded, {summary['audio_seconds']:.0f} s "
        f"of audio in {wall:.1f} s ({summary['audio_seconds_per_wall_second']}x real time, "
        f"{summary['files_per_second']} files/s). Results in {job.out_dir}")
    return summary


def tag(source: str, out_dir: str, model: ModelRef, beam_args: Optional[Sequence[str]] = None,
        **kwargs: Any) -> dict[str, Any]:
    """Library entry point: ``tag("music/", "tags/", latest_version("outputs/serving/genre"))``."""
    job = TagJob(source=source, out_dir=out_dir, model=model,
                 beam_args=list(beam_args) if beam_args else list(runners.IN_PROCESS), **kwargs)
    return run(job)
