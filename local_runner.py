"""Run the genre pipeline locally: LocalDagRunner, SQLite MLMD, DirectRunner Beam.

    python local_runner.py                       # synthetic data set, CNN, to a pushed model
    python local_runner.py --data-root ~/gtzan --split fault-filtered --split-dir splits/ --model vgg
    python local_runner.py --until validate      # ingest and validate only

Re-running reuses cached component outputs (MLMD) when inputs and settings are unchanged.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Beam's multi-processing workers are new interpreters: they must find the project too.
_ROOT = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from pipeline.config import PipelineConfig, add_cli_arguments, config_from_args  # noqa: E402

PROGRESS_WORDS = ("is running", "is finished", "is skipped")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cli_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--until", choices=("validate", "train", "push"), default="push",
                     help="stop after data validation, after training, or run to the push (default: %(default)s)")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")
    return parser.parse_args(argv)


def prepare_data(config: PipelineConfig) -> str:
    """The data root: the user's, or the synthetic default set (generated once, then reused)."""
    if config.paths.data_root:
        if not os.path.isdir(config.paths.data_root):
            raise SystemExit(f"--data-root {config.paths.data_root} is not a directory. Point it at a GTZAN-style "
                             "root holding <genre>/<genre>.NNNNN.wav (or its genres_original/ folder).")
        return os.path.abspath(config.paths.data_root)
    from synthetic.generator import generate
    root = config.synthetic_data_root
    s = config.synthetic
    print(f"[data] synthetic GTZAN-shaped set: {s.tracks_per_genre} tracks x 10 genres x {s.seconds:g} s "
          f"(seed {s.seed}) in {root}", flush=True)

    def progress(done: int, total: int) -> None:
        if done % 20 == 0 or done == total:
            print(f"[data] {done}/{total} tracks ready", flush=True)

    generate(root, s.tracks_per_genre, s.seconds, s.seed, config.audio.sample_rate, progress=progress)
    return root


def show_component_progress() -> None:
    """TFX logs a line as each component starts and ends; show those, hide the rest of INFO."""
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.INFO)

    class ProgressOnly(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING or any(w in record.getMessage() for w in PROGRESS_WORDS)

    absl_logging.get_absl_handler().addFilter(ProgressOnly())
    logging.getLogger("absl").addFilter(ProgressOnly())  # absl records also reach Python's root handler


def summarize(config: PipelineConfig, started: float) -> dict:
    """What this run produced, read back from MLMD and the gate's report.

    Follows each component's latest execution to its outputs: a cached execution reuses
    older artifacts, so "the newest artifact of a type" would describe an earlier run.
    """
    from components.audio_example_gen.quarantine import SUMMARY_FILE, AudioQuarantine
    from components.clip_evaluator.executor import ALREADY_RELEASED
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(config.metadata_path))

    def latest_execution(component: str):
        names = [t.name for t in store.get_execution_types() if t.name.split(".")[-1] == component]
        executions = [e for name in names for e in store.get_executions_by_type(name)]
        return max(executions, key=lambda e: e.id) if executions else None

    def output_of(execution, type_name: str):
        if execution is None:
            return None
        ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
               if e.type == metadata_store_pb2.Event.OUTPUT]
        type_id = store.get_artifact_type(type_name).id
        found = [a for a in store.get_artifacts_by_id(ids) if a.type_id == type_id]
        return found[0] if found else None

    summary: dict = {"seconds": round(time.time() - started, 1), "pipeline_root": config.pipeline_root,
                     "mlflow_tracking_uri": config.mlflow_tracking_uri}
    report = output_of(latest_execution("AudioExampleGen"), AudioQuarantine.TYPE_NAME)
    if report is not None and os.path.exists(os.path.join(report.uri, SUMMARY_FILE)):
        with open(os.path.join(report.uri, SUMMARY_FILE)) as f:
            ingestion = json.load(f)
        summary["data"] = {"files": ingestion["files"], "report": report.uri,
                           "tracks": {split: counts["tracks"] for split, counts in ingestion["splits"].items()},
                           "quarantined": [{k: bad[k] for k in ("path", "reason", "detail")}
                                           for bad in ingestion["quarantined"]]}
    gate_run = latest_execution("ClipEvaluator")
    blessing = output_of(gate_run, "ModelBlessing")
    if blessing is not None and os.path.exists(os.path.join(blessing.uri, "clip_metrics.json")):
        with open(os.path.join(blessing.uri, "clip_metrics.json")) as f:
            summary["gate"] = json.load(f)
    model = output_of(latest_execution("Trainer"), "Model")
    if model is not None and "mlflow_run_id" in model.custom_properties:
        summary["mlflow_run_id"] = model.custom_properties["mlflow_run_id"].string_value
    push_run = latest_execution("Pusher")
    pushed = output_of(push_run, "PushedModel")
    released_before = summary.get("gate", {}).get("reasons") == [ALREADY_RELEASED]
    if pushed is not None and gate_run is not None and (push_run.id > gate_run.id or released_before):
        summary["pushed_to"] = pushed.custom_properties["pushed_destination"].string_value
    return summary


def print_summary(summary: dict, until: str) -> None:
    from components.clip_evaluator.executor import ALREADY_RELEASED

    print("\n=== genre pipeline: summary ===")
    data = summary.get("data")
    if data:
        tracks = ", ".join(f"{split} {n}" for split, n in data["tracks"].items())
        print(f"data: {data['files']['ingested']} files ingested (tracks: {tracks}), "
              f"{data['files']['quarantined']} quarantined, {data['files']['excluded']} excluded by the split")
        for bad in data["quarantined"]:
            print(f"  quarantined {bad['path']}: {bad['reason']} ({bad['detail']})")
        print(f"  ingestion report: {data['report']}")
    gate = summary.get("gate")
    if gate:
        print(f"held-out '{gate['split']}' split, {gate['split_protocol']} protocol (tracks never in training):")
        print(f"  segment accuracy {gate['candidate_segment_accuracy']:.3f} over {gate['candidate_segments']:.0f} "
              f"segments; clip accuracy {gate['candidate_clip_accuracy']:.3f} over {gate['candidate_clips']:.0f} clips")
        print(f"  blessed: {'yes' if gate['blessed'] else 'no: ' + '; '.join(gate['reasons'])}")
        if not gate["blessed"] and gate["reasons"] == [ALREADY_RELEASED]:
            print(f"  serving: unchanged, {summary.get('pushed_to', 'the last pushed version')}")
    elif until == "push":
        print("  no gate report found")
    if until == "push" and not (gate and gate["reasons"] == [ALREADY_RELEASED]):
        print(f"  pushed: {summary.get('pushed_to', 'no (not blessed, nothing pushed)')}")
    if "mlflow_run_id" in summary:
        print(f"  MLflow run {summary['mlflow_run_id']} at {summary['mlflow_tracking_uri']}")
    print(f"  pipeline root {summary['pipeline_root']}; {summary['seconds']:.0f} s")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = config_from_args(args)
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    started = time.time()
    data_root = prepare_data(config)
    os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    show_component_progress()
    pipeline = create_pipeline(
        config, data_root, until=args.until, enable_cache=not args.no_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path))
    print(f"[run] {config.pipeline_name}: model {config.train.model}, split {config.split.protocol}, "
          f"data {data_root}", flush=True)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    summary = summarize(config, started)
    print_summary(summary, args.until)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
