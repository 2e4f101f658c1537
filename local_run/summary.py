"""What a run produced and the summary the console ends with; the Tuner's search is read from this run's Tuner
artifacts, so a Tuner taken from the cache reports the search that made its choice."""
from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

from config.settings import PipelineConfig

def summarize(config: PipelineConfig, run_id: str, started: float) -> dict:
    """What this run produced, read from its own executions in MLMD (never another run's)."""
    from components.audio_example_gen.quarantine import SUMMARY_FILE, AudioQuarantine
    from components.clip_evaluator.executor import ALREADY_RELEASED, METRICS_FILE
    from ml_metadata.proto import metadata_store_pb2
    from models import hyperparameters
    from models.warm_start import PROPERTY as WARM_START
    from pipeline.run_record import RunRecord, open_store

    record = RunRecord(open_store(config.metadata_path), run_id)
    summary: dict = {"run_id": run_id, "seconds": round(time.time() - started, 1),
                     "pipeline_root": config.pipeline_root, "mlflow_tracking_uri": config.mlflow_tracking_uri,
                     "reused_from_cache": record.cached(), "genres": list(config.genres)}
    best, results = record.output("Tuner", "HyperParameters"), record.output("Tuner", "TunerResults")
    if best is not None and results is not None:  # the search: the values chosen, every trial's, best first
        # Numbered from 1, as the [tune] lines number them (KerasTuner's trial ids count from 0).
        trials = [{"trial": int(row.pop("trial_id")) + 1, "score": row.pop("score"),
                   "values": hyperparameters.chosen(row)} for row in _only_file(results.uri)]
        summary["tuning"] = {"chosen": hyperparameters.chosen(_only_file(best.uri)), "trials": trials}
    report = record.output("AudioExampleGen", AudioQuarantine.TYPE_NAME)
    if report is not None and os.path.exists(os.path.join(report.uri, SUMMARY_FILE)):
        with open(os.path.join(report.uri, SUMMARY_FILE)) as f:
            ingestion = json.load(f)
        summary["data"] = {"files": ingestion["files"], "report": report.uri,
                           "tracks": {split: counts["tracks"] for split, counts in ingestion["splits"].items()},
                           "groups": {split: counts.get("groups", counts["tracks"])
                                      for split, counts in ingestion["splits"].items()},
                           "group_by": ingestion.get("group_by", "track"),
                           "group_placeholders": ingestion.get("group_placeholders", 0),
                           "quarantined": [{k: bad[k] for k in ("path", "reason", "detail")}
                                           for bad in ingestion["quarantined"]],
                           "excluded": ingestion.get("excluded_counts") or {  # a summary.json from before the counts
                               reason: len(paths) for reason, paths in ingestion.get("excluded", {}).items()},
                           "warnings": ingestion.get("warnings", []),
                           "view_segments": ingestion.get("view_segments", 0), "span": ingestion.get("span")}
    graph = record.output("Transform", "TransformGraph")
    if graph is not None and "spans_transformed" in graph.custom_properties:
        summary["transform"] = {key: graph.custom_properties[key].string_value
                                for key in ("spans_transformed", "spans_analysed", "spans")}
    blessing = record.output("ClipEvaluator", "ModelBlessing")
    if blessing is not None and os.path.exists(os.path.join(blessing.uri, METRICS_FILE)):
        with open(os.path.join(blessing.uri, METRICS_FILE)) as f:
            summary["gate"] = json.load(f)
    model = record.output("Trainer", "Model")
    # The MLflow run, how training began (warm from the champion, or cold and why), the frozen body's pass.
    properties = {"mlflow_run_id": "mlflow_run_id", "warm_start": WARM_START, "embedded": "segments_embedded"}
    for name, prop in properties.items():
        if model is not None and prop in model.custom_properties:
            summary[name] = model.custom_properties[prop].string_value
    pushed = record.output("Pusher", "PushedModel")
    released_before = summary.get("gate", {}).get("reasons") == [ALREADY_RELEASED]
    if pushed is not None and (record.state("Pusher") == metadata_store_pb2.Execution.COMPLETE or released_before):
        summary["pushed_to"] = pushed.custom_properties["pushed_destination"].string_value
    return summary


def print_summary(summary: dict, until: str) -> None:
    from components.clip_evaluator.executor import ALREADY_RELEASED, per_genre_lines
    from models import hyperparameters

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
        span, earlier = data.get("span"), _reused(summary, "AudioExampleGen")
        if span and span.get("built_on"):
            print(f"  span {span['span']}{earlier}, built on span {span['built_on']}: {span['decoded']} files decoded "
                  f"({span['new']} new, {span['changed']} changed), {span['unchanged']} unchanged and not decoded, "
                  f"{span['removed']} removed or moved")
        elif span:
            print(f"  span {span['span']}{earlier}: every file decoded ({span['rebuild_reason']})")
        for bad in data["quarantined"]:
            print(f"  quarantined {bad['path']}: {bad['reason']} ({bad['detail']})")
        unlisted = data["files"]["quarantined"] - len(data["quarantined"])
        if unlisted > 0:
            print(f"  ... and {unlisted} more quarantined files, each with its reason in the report's quarantine.jsonl")
        for warning in data.get("warnings", []):
            print(f"  warning: {warning}")
        print(f"  ingestion report: {data['report']}")
    transform = summary.get("transform")
    if transform:
        cached = " (TFT's cache holds the others')" if transform["spans_analysed"] != transform["spans"] else ""
        print(f"Transform{_reused(summary, 'Transform')}: spans {transform['spans']}; analysed span(s) "
              f"{transform['spans_analysed'] or 'none'}{cached}, "
              f"transformed span(s) {transform['spans_transformed'] or 'none'}")
    tuning = summary.get("tuning")
    if tuning:  # what the Tuner chose, every trial's score
        print(f"tuned: {hyperparameters.describe(tuning['chosen'])} (chosen from {len(tuning['trials'])} trials by "
              "fold clip accuracy over the train and eval clips; the preset stays unless a trial leads it by more "
              f"than {hyperparameters.PRESET_MARGIN:.0%})")
        for t in tuning["trials"]:
            print(f"  trial {t['trial']}: {t['score']:.3f} {hyperparameters.describe(t['values'])}")
    if summary.get("warm_start"):
        print(f"trained: {summary['warm_start']}")
    if summary.get("embedded"):
        print(f"  the frozen body embedded {summary['embedded']} segments (the others from the embeddings store)")
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


def _reused(summary: dict, step: str) -> str:
    """A marker for the lines that describe a step's cached output: what an earlier run did, not this one."""
    return " (an earlier run's, reused from cache)" if step in summary.get("reused_from_cache", ()) else ""


def _only_file(uri: str) -> Any:
    [name] = os.listdir(uri)
    with open(os.path.join(uri, name)) as f:
        return json.load(f)
