"""One run on this machine: the config checked against the data, then the LocalDagRunner under the output
directory's lock, console and step lines; the summary, or one paragraph on failure."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import time
import traceback
from typing import Optional

from config.errors import UserError
from config.settings import PipelineConfig
from local_run.console import RunConsole, StepTracker
from local_run.failure import RunFailed, close_orphans, failure_paragraph, mark_mlflow_failed, not_started
from local_run.lock import output_dir_lock
from local_run.preflight import preflight
from local_run.summary import print_summary, summarize
from pipeline.flags import config_from_args


def checked_config(args: argparse.Namespace) -> PipelineConfig:
    """Flags -> config, with the label set resolved from the data root where it exists."""
    config = config_from_args(args)
    if args.genres_from_data and args.genres:
        raise UserError("--genres and --genres-from-data both name the label set.", where="command line",
                        fix="keep one of them")
    if config.paths.data_root:
        config = with_data(config, os.path.abspath(config.paths.data_root), args.genres_from_data)
    return config


def with_data(config: PipelineConfig, root: str, genres_from_data: bool) -> PipelineConfig:
    """``config`` reading ``root``, with the label set the preflight checks resolve there."""
    genres = preflight(config, root, genres_from_data)
    return dataclasses.replace(config, genres=genres, paths=dataclasses.replace(config.paths, data_root=root))


def prepare_data(config: PipelineConfig) -> str:
    """The synthetic default set, generated once (atomically, resumable), then reused. It has its own sample rate:
    ingestion resamples, so switching models reuses the same files and ingestion cache."""
    from synthetic.generator import generate, is_complete
    root = config.synthetic_data_root
    s = config.synthetic
    shape = dict(tracks_per_genre=s.tracks_per_genre, seconds=s.seconds, seed=s.seed, sample_rate=s.sample_rate)
    if is_complete(root, **shape):
        print(f"[data] reusing the synthetic set in {root} ({s.tracks_per_genre * 10} tracks)", flush=True)
        return root
    print(f"[data] generating the synthetic GTZAN-shaped set: {s.tracks_per_genre} tracks x 10 genres x "
          f"{s.seconds:g} s (seed {s.seed}) in {root}", flush=True)

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"[data] {done}/{total} tracks ready", flush=True)

    generate(root, **shape, progress=progress)
    return root


def execute(config: PipelineConfig, run_id: str, until: str, enable_cache: bool) -> None:
    """Everything after the checks: data, pipeline construction, the LocalDagRunner."""
    from tfx import v1 as tfx
    from tfx.dsl.compiler import constants
    from tfx.orchestration.portable import runtime_parameter_utils

    from pipeline.pipeline import create_pipeline

    class NamedRunLocalDagRunner(tfx.orchestration.LocalDagRunner):
        """LocalDagRunner whose pipeline-run context carries our run id, so the summary finds it."""

        def run_with_ir(self, pipeline, run_options=None):
            runtime_parameter_utils.substitute_runtime_parameter(
                pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
            return super().run_with_ir(pipeline, run_options)

    pipeline = create_pipeline(
        config, config.paths.data_root, until=until, enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path))
    print(f"[run] {config.pipeline_name} run {run_id}: model {config.train.model}, split {config.split.protocol}, "
          f"{len(config.genres)} genres, data {config.paths.data_root}", flush=True)
    NamedRunLocalDagRunner().run(pipeline)


def forget_increments(config: PipelineConfig) -> None:
    """``--full``: what makes a re-run incremental goes (the span chain, the materialised spans and the analyzer
    cache, the embeddings store), so every step starts from scratch."""
    from components.audio_example_gen import spans
    from components.bounded_transform import executor as transform
    spans.forget(os.path.join(config.pipeline_root, "AudioExampleGen"))
    transform.forget(os.path.join(config.pipeline_root, "Transform"))
    shutil.rmtree(os.path.join(config.pipeline_root, "embeddings"), ignore_errors=True)


def run(config: PipelineConfig, until: str = "push", enable_cache: bool = True, verbose: bool = False,
        genres_from_data: bool = False, full: bool = False) -> dict:
    """Run the pipeline to ``until`` under the output directory's lock; the summary, or RunFailed."""
    started = time.time()
    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    lock = output_dir_lock(config.output_dir)
    try:
        lock.__enter__()
    except UserError as error:
        raise not_started(error) from error
    log_path = os.path.join(config.output_dir, "logs", f"run-{run_id}.log")
    tracker: Optional[StepTracker] = None
    try:
        with RunConsole(log_path, verbose=verbose) as console:
            print(f"[run] log file: {log_path}", flush=True)
            try:
                tracker = StepTracker(console)
                close_orphans(config)
                if not config.paths.data_root:
                    config = with_data(config, prepare_data(config), genres_from_data)
                if full:
                    forget_increments(config)
                    config = dataclasses.replace(config, train=dataclasses.replace(config.train, warm_start_epochs=0))
                execute(config, run_id, until, enable_cache)
                summary = summarize(config, run_id, started)
                summary["steps"] = tracker.steps
            except BaseException as error:  # noqa: BLE001 - every failure ends in one paragraph
                step = tracker.current if tracker else None
                interrupted = isinstance(error, KeyboardInterrupt)
                traceback.print_exc()  # to the log file only
                mark_mlflow_failed(config, started, step, interrupted)
                paragraph = failure_paragraph(error, step, log_path)
                console.show(paragraph)
                raise RunFailed(paragraph, code=130 if interrupted else 1) from error
            finally:
                if tracker is not None:
                    tracker.close()
    finally:
        lock.__exit__(None, None, None)
    summary["log"] = log_path
    print_summary(summary, until)
    return summary
