"""Run the genre pipeline locally: LocalDagRunner, SQLite MLMD, DirectRunner Beam.

    python local_runner.py                       # synthetic data set, CNN, to a pushed model
    python local_runner.py --data-root ~/gtzan --split fault-filtered --split-dir splits/ --model vgg
    python local_runner.py --data-root ~/my-music --genres-from-data   # your own genre folders
    python local_runner.py --until validate      # ingest and validate only

Re-running reuses cached component outputs (MLMD) when inputs and settings are unchanged.
The console shows the project's progress lines; everything else goes to a log file under
<output-dir>/logs/ (--verbose shows it too). One run at a time per output directory.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Beam's multi-processing workers are new interpreters: they must find the project too.
_ROOT = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Optional  # noqa: E402

from config.errors import UserError, find_user_error  # noqa: E402
from config.settings import PipelineConfig  # noqa: E402
from pipeline import preflight  # noqa: E402
from pipeline.console import RunConsole  # noqa: E402
from pipeline.flags import add_cli_arguments, config_from_args  # noqa: E402
from pipeline.run_lock import OutputDirLock  # noqa: E402

HEARTBEAT_SECONDS = 30.0


class RunFailed(SystemExit):
    """The run stopped; ``paragraph`` is what the console showed. Exit code 1 (130 on Ctrl-C)."""

    def __init__(self, paragraph: str, code: int = 1) -> None:
        super().__init__(code)
        self.paragraph = paragraph


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cli_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--until", choices=("validate", "train", "push"), default="push",
                     help="stop after data validation, after training, or run to the push (default: %(default)s)")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")
    run.add_argument("--verbose", action="store_true",
                     help="show library output (TensorFlow, Beam, TFX) on the console, not only in the log file")
    return parser.parse_args(argv)


def prepare_data(config: PipelineConfig) -> str:
    """The synthetic default set: generated once (atomically, resumable), then reused.

    The set has its own sample rate (``synthetic.sample_rate``), whatever the model's:
    ingestion resamples, so switching models reuses the same files and ingestion cache.
    """
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


class StepTracker(logging.Handler):
    """Turns TFX's component log records into console lines, with a heartbeat on long steps."""

    def __init__(self, console: RunConsole) -> None:
        super().__init__(level=logging.INFO)
        self.console = console
        self.current: Optional[str] = None
        self.started = 0.0
        self.outcome = ""  # how the current step ended, when not by executing
        self.steps: dict[str, dict] = {}  # component -> seconds and outcome, in order
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, name="step-heartbeat", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Component ") and message.endswith(" is running."):
            self.current, self.started, self.outcome = message[len("Component "):-len(" is running.")], time.time(), ""
            print(f"[step] {self.current} ...", flush=True)
        elif message.startswith("A cached execution") and self.current:
            self.outcome = "reused from cache"
        elif message.startswith("Skipping execution for") and self.current:
            self.outcome = "skipped (its condition does not hold: the model was not blessed)"
        elif message.startswith("Component ") and message.endswith(" is finished.") and self.current:
            seconds = time.time() - self.started
            self.steps[self.current] = {"seconds": round(seconds, 1), "outcome": self.outcome or "executed"}
            how = self.outcome or f"done in {seconds:.0f} s"
            print(f"[step] {self.current}: {how}", flush=True)
            self.current = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(5.0):
            quiet = time.time() - self.console.last_shown
            if self.current and quiet >= HEARTBEAT_SECONDS:
                print(f"[step] {self.current} still running ({time.time() - self.started:.0f} s)", flush=True)

    def close(self) -> None:
        self._stop.set()
        super().close()


def track_steps(console: RunConsole) -> StepTracker:
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.INFO)  # the log file gets TFX's full story
    tracker = StepTracker(console)
    logging.getLogger("absl").addHandler(tracker)
    return tracker


def summarize(config: PipelineConfig, run_id: str, started: float) -> dict:
    """What this run produced, read from its own executions in MLMD (never another run's)."""
    from components.audio_example_gen.quarantine import SUMMARY_FILE, AudioQuarantine
    from components.clip_evaluator.executor import ALREADY_RELEASED, METRICS_FILE
    from pipeline.run_record import RunRecord, open_store
    from pipeline.tuning_summary import tuning_summary
    from ml_metadata.proto import metadata_store_pb2

    record = RunRecord(open_store(config.metadata_path), run_id)
    summary: dict = {"run_id": run_id, "seconds": round(time.time() - started, 1),
                     "pipeline_root": config.pipeline_root, "mlflow_tracking_uri": config.mlflow_tracking_uri,
                     "reused_from_cache": record.cached(), "genres": list(config.genres)}
    summary.update(tuning_summary(record))
    report = record.output("AudioExampleGen", AudioQuarantine.TYPE_NAME)
    if report is not None and os.path.exists(os.path.join(report.uri, SUMMARY_FILE)):
        with open(os.path.join(report.uri, SUMMARY_FILE)) as f:
            ingestion = json.load(f)
        summary["data"] = {"files": ingestion["files"], "report": report.uri,
                           "tracks": {split: counts["tracks"] for split, counts in ingestion["splits"].items()},
                           "groups": {split: counts.get("groups", counts["tracks"])
                                      for split, counts in ingestion["splits"].items()},
                           "group_by": ingestion.get("group_by", "track"),
                           "quarantined": [{k: bad[k] for k in ("path", "reason", "detail")}
                                           for bad in ingestion["quarantined"]],
                           "excluded": ingestion.get("excluded_counts") or {  # a summary.json from before the counts
                               reason: len(paths) for reason, paths in ingestion.get("excluded", {}).items()},
                           "warnings": ingestion.get("warnings", []),
                           "view_segments": ingestion.get("view_segments", 0)}
    blessing = record.output("ClipEvaluator", "ModelBlessing")
    if blessing is not None and os.path.exists(os.path.join(blessing.uri, METRICS_FILE)):
        with open(os.path.join(blessing.uri, METRICS_FILE)) as f:
            summary["gate"] = json.load(f)
    model = record.output("Trainer", "Model")
    if model is not None and "mlflow_run_id" in model.custom_properties:
        summary["mlflow_run_id"] = model.custom_properties["mlflow_run_id"].string_value
    pushed = record.output("Pusher", "PushedModel")
    released_before = summary.get("gate", {}).get("reasons") == [ALREADY_RELEASED]
    if pushed is not None and (record.state("Pusher") == metadata_store_pb2.Execution.COMPLETE or released_before):
        summary["pushed_to"] = pushed.custom_properties["pushed_destination"].string_value
    return summary


def print_summary(summary: dict, until: str) -> None:
    from components.clip_evaluator.executor import ALREADY_RELEASED, per_genre_lines
    from pipeline.tuning_summary import tuning_lines

    print("\n=== genre pipeline: summary ===")
    data = summary.get("data")
    if data:
        tracks = ", ".join(f"{split} {n}" for split, n in data["tracks"].items())
        print(f"data: {data['files']['ingested']} files ingested (tracks: {tracks}), "
              f"{data['files']['quarantined']} quarantined, {data['files']['excluded']} excluded"
              + (f" ({', '.join(f'{reason} {n}' for reason, n in sorted(data['excluded'].items()))})"
                 if data.get("excluded") else ""))
        if data.get("view_segments"):
            print(f"  training views: {data['view_segments']} device-like segments added to the train split "
                  "(--train-views); eval and test as recorded")
        if data.get("groups") and data["groups"] != data["tracks"]:  # a library's albums or artists, not loose clips
            groups = ", ".join(f"{split} {n}" for split, n in data["groups"].items())
            print(f"  split by {data['group_by']} (all tracks of one on one side): {groups} groups")
        for bad in data["quarantined"]:
            print(f"  quarantined {bad['path']}: {bad['reason']} ({bad['detail']})")
        unlisted = data["files"]["quarantined"] - len(data["quarantined"])
        if unlisted > 0:
            print(f"  ... and {unlisted} more quarantined files, each with its reason in the report's quarantine.jsonl")
        for warning in data.get("warnings", []):
            print(f"  warning: {warning}")
        print(f"  ingestion report: {data['report']}")
    for line in tuning_lines(summary):  # what the Tuner chose, every trial's score
        print(line)
    gate = summary.get("gate")
    if gate:
        print(f"held-out '{gate['split']}' split, {gate['split_protocol']} protocol (tracks never in training):")
        print(f"  segment accuracy {gate['candidate_segment_accuracy']:.3f} over {gate['candidate_segments']:.0f} "
              f"segments; clip accuracy {gate['candidate_clip_accuracy']:.3f} over {gate['candidate_clips']:.0f} clips")
        for line in per_genre_lines(gate):
            print(line)
        print(f"  blessed: {'yes' if gate['blessed'] else 'no: ' + '; '.join(gate['reasons'])}")
        if gate.get("baseline_decision"):  # which model the no-regression bar was held against, if any
            print(f"  baseline: {gate['baseline_decision']}")
        if not gate["blessed"] and gate["reasons"] == [ALREADY_RELEASED]:
            print(f"  serving: unchanged, {summary.get('pushed_to', 'the last pushed version')}")
    elif until == "push":
        print("  no gate report found")
    if until == "push" and not (gate and gate["reasons"] == [ALREADY_RELEASED]):
        print(f"  pushed: {summary.get('pushed_to', 'no (not blessed, nothing pushed)')}")
    if "mlflow_run_id" in summary:
        print(f"  MLflow run {summary['mlflow_run_id']} at {summary['mlflow_tracking_uri']} (`make mlflow-ui`)")
        plots = glob.glob(os.path.join(summary["pipeline_root"], "mlflow-artifacts", "**", summary["mlflow_run_id"],
                                       "artifacts", "plots"), recursive=True)
        print(f"  plots (learning curves, confusion matrices): {plots[0] if plots else 'the run in MLflow, Artifacts'}")
    evaluations = glob.glob(os.path.join(summary["pipeline_root"], "*Evaluator", "evaluation", "*"))
    if evaluations:  # README "Looking at results": TFMA's own view, the ingestion report, the plots
        print(f"  TFMA evaluation: {max(evaluations, key=os.path.getmtime)}")
    if summary.get("reused_from_cache"):
        print(f"  reused from cache: {', '.join(summary['reused_from_cache'])}")
    print(f"  pipeline root {summary['pipeline_root']}; {summary['seconds']:.0f} s")
    if "log" in summary:
        print(f"  log: {summary['log']}")


def failure_paragraph(error: BaseException, step: Optional[str], log_path: str) -> str:
    """One short paragraph: what failed, where, the fix, and where the full story is."""
    where = f" in {step}" if step else ""
    user = find_user_error(error)
    if isinstance(error, KeyboardInterrupt):
        text = (f"Interrupted{where}. Run the same command again: the components that finished are "
                "reused from cache.")
    elif user is not None:
        text = f"Run stopped{where}: {user.paragraph()}"
    else:
        detail = (str(error).strip().splitlines() or [""])[-1][:300]
        text = (f"Run failed{where}: {type(error).__name__}: {detail}\nThis is not a known data or settings "
                "problem; the traceback is in the log (or re-run with --verbose).")
    return f"{text}\nLog: {log_path}"


def _close_orphans(config: PipelineConfig) -> None:
    """Records a killed earlier run left open: MLflow runs -> KILLED, MLMD executions -> FAILED."""
    from models import tracking
    for run_id in tracking.close_orphaned_runs(config):
        print(f"[run] MLflow run {run_id} was left RUNNING by a run that was killed: marked KILLED", flush=True)
    if os.path.exists(config.metadata_path):
        from pipeline.run_record import fail_orphaned_executions, open_store
        count = fail_orphaned_executions(open_store(config.metadata_path))
        if count:
            print(f"[run] {count} component execution(s) left RUNNING by a killed run: marked FAILED in MLMD",
                  flush=True)


def _mark_mlflow_failed(config: PipelineConfig, started: float, step: Optional[str], interrupted: bool) -> None:
    try:
        from models import tracking
        for run_id in tracking.mark_failed(config, int(started * 1000), step or "the run", interrupted):
            print(f"[run] MLflow run {run_id} marked {'KILLED' if interrupted else 'FAILED'} "
                  f"({step or 'the run'})", flush=True)
    except Exception:  # noqa: BLE001 - the original failure is what the user must see
        traceback.print_exc()


def _execute(config: PipelineConfig, args: argparse.Namespace, run_id: str) -> None:
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
        config, config.paths.data_root, until=args.until, enable_cache=not args.no_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path))
    print(f"[run] {config.pipeline_name} run {run_id}: model {config.train.model}, split {config.split.protocol}, "
          f"{len(config.genres)} genres, data {config.paths.data_root}", flush=True)
    NamedRunLocalDagRunner().run(pipeline)


def _checked_config(args: argparse.Namespace) -> PipelineConfig:
    """Flags -> config, with the label set resolved from the data root where it exists."""
    config = config_from_args(args)
    if args.genres_from_data and args.genres:
        raise UserError("--genres and --genres-from-data both name the label set.", where="command line",
                        fix="keep one of them")
    if config.paths.data_root:
        root = os.path.abspath(config.paths.data_root)
        genres = preflight.preflight(config, root, args.genres_from_data)
        config = dataclasses.replace(config, genres=genres,
                                     paths=dataclasses.replace(config.paths, data_root=root))
    return config


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.time()
    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    try:
        config = _checked_config(args)  # before TensorFlow: wrong paths fail in a second
        lock = OutputDirLock(config.output_dir)
        lock.__enter__()
    except UserError as error:
        paragraph = f"Run not started: {error.paragraph()}"
        print(paragraph, file=sys.stderr, flush=True)
        raise RunFailed(paragraph) from error
    log_path = os.path.join(config.output_dir, "logs", f"run-{run_id}.log")
    tracker: Optional[StepTracker] = None
    try:
        with RunConsole(log_path, verbose=args.verbose) as console:
            print(f"[run] log file: {log_path}", flush=True)
            try:
                tracker = track_steps(console)
                _close_orphans(config)
                if not config.paths.data_root:
                    root = prepare_data(config)
                    genres = preflight.preflight(config, root, args.genres_from_data)
                    config = dataclasses.replace(config, genres=genres,
                                                 paths=dataclasses.replace(config.paths, data_root=root))
                _execute(config, args, run_id)
                summary = summarize(config, run_id, started)
                summary["steps"] = tracker.steps
            except BaseException as error:  # noqa: BLE001 - every failure ends in one paragraph
                step = tracker.current if tracker else None
                interrupted = isinstance(error, KeyboardInterrupt)
                traceback.print_exc()  # to the log file only
                _mark_mlflow_failed(config, started, step, interrupted)
                paragraph = failure_paragraph(error, step, log_path)
                console.show(paragraph)
                raise RunFailed(paragraph, code=130 if interrupted else 1) from error
            finally:
                if tracker is not None:
                    logging.getLogger("absl").removeHandler(tracker)
                    tracker.close()
    finally:
        lock.__exit__(None, None, None)
    summary["log"] = log_path
    print_summary(summary, args.until)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
