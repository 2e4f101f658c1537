"""ClipEvaluator executor: clip-level scores of candidate and baseline, the final blessing, MLflow."""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import span_views
from components.baseline_aware_evaluator.executor import comparable_baseline
from components.model_tracks import read_split
from config.settings import GATE_SPLIT, PipelineConfig
from models import metrics, plots, tracking
from models.signatures import EXAMPLES_SIGNATURE

BATCH = 64
METRICS_FILE = "clip_metrics.json"


@dataclasses.dataclass
class GateDecision:
    blessed: bool
    reasons: list[str]


def read_batches(examples: types.Artifact, split: str, batch_size: int = BATCH
                 ) -> Iterator[tuple[tf.Tensor, np.ndarray, np.ndarray]]:
    """One split of raw examples in batches of (serialized examples, labels, track ids), one in memory at a time."""
    spec = {"label": tf.io.FixedLenFeature([], tf.int64), "track_id": tf.io.FixedLenFeature([], tf.string)}
    for serialized, parsed in read_split(examples, split, spec, batch_size):
        yield serialized, parsed["label"].numpy(), parsed["track_id"].numpy()


def load_examples_signature(model: types.Artifact) -> tuple[Any, Callable[..., dict[str, tf.Tensor]]]:
    """(the loaded SavedModel, its examples signature): keep the first alive while calling the second."""
    loaded = tf.saved_model.load(path_utils.serving_model_path(model.uri))
    return loaded, loaded.signatures[EXAMPLES_SIGNATURE]


def score_split(examples: types.Artifact, split: str, models: Sequence[types.Artifact],
                batch_size: int = BATCH) -> list[metrics.ClipAccumulator]:
    """Every model's segment and clip scores on one split of the live data (every span of ``examples``'s chain) in
    one pass, kept per track, never per segment."""
    loaded = [load_examples_signature(model) for model in models]
    accumulators = [metrics.ClipAccumulator() for _ in models]
    segments = 0
    with tempfile.TemporaryDirectory(prefix="clip-gate-") as scratch:
        for view in span_views.split_views(examples, split, scratch):
            for serialized, labels, track_ids in read_batches(view, split, batch_size):
                segments += len(labels)
                for (_, signature), accumulator in zip(loaded, accumulators):
                    accumulator.add(track_ids, signature(examples=serialized)["probabilities"].numpy(), labels)
    if not segments:
        raise ValueError(f"The '{split}' split under {examples.uri} holds no examples: nothing to gate on. "
                         "Check the split protocol and the data root.")
    return accumulators


def tfma_metrics(evaluation: types.Artifact, genres: Sequence[str]) -> dict[str, float]:
    """Overall and per-genre TFMA metrics of the candidate, flattened for MLflow (class id i = genres[i])."""
    flat: dict[str, float] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation.uri):
        keys = metrics_for_slice.slice_key.single_slice_keys
        slice_name = "overall" if not keys else "_".join(
            f"{k.column}_{k.bytes_value.decode() or k.int64_value}" for k in keys)
        for kv in metrics_for_slice.metric_keys_and_values:
            if kv.key.is_diff or not kv.value.HasField("double_value") or kv.key.model_name == "baseline":
                continue
            name = kv.key.name
            if kv.key.sub_key.HasField("class_id"):
                name = f"{name}_{genres[kv.key.sub_key.class_id.value]}"
            if slice_name == "overall" or name == "sparse_categorical_accuracy":
                flat[f"test_{slice_name}_{name}"] = kv.value.double_value.value
    return flat


def strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as None: TFMA reports NaN where it cannot compute; strict JSON refuses NaN."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(path: str, report: dict[str, Any]) -> None:
    """The gate's report as strict JSON (no NaN: null instead)."""
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(strict_json(report), indent=2, sort_keys=True, allow_nan=False))


ALREADY_RELEASED = "already released: the candidate is the last blessed model (a cached re-run); nothing new to push"


def decide(config: PipelineConfig, tfma_blessed: bool, candidate: metrics.Scores,
           baseline: Optional[metrics.Scores], candidate_is_baseline: bool = False) -> GateDecision:
    """Blessed only when every bar holds on a test split that can judge (enough clips, every genre of the label
    set); a model is released once."""
    gate = config.gate
    if candidate_is_baseline:
        return GateDecision(blessed=False, reasons=[ALREADY_RELEASED])
    reasons = []
    if candidate.clips < gate.min_test_clips:
        reasons.append(f"the held-out test split has {candidate.clips} clips, fewer than --min-test-clips "
                       f"{gate.min_test_clips}: too few to judge a model. Add tracks, give the test split "
                       "a larger share (--split-ratios), or lower --min-test-clips")
    clips_per_genre = candidate.clip_confusion.sum(axis=1)
    missing = [genre for i, genre in enumerate(config.genres) if i >= len(clips_per_genre) or not clips_per_genre[i]]
    if missing:
        reasons.append(f"the held-out test split has no clip of {len(missing)} of the {len(config.genres)} genres "
                       f"({', '.join(missing)}), so the model is not judged on them. Add tracks of these genres, "
                       "give the test split a larger share (--split-ratios), or leave the genres out of the label "
                       "set (--genres)")
    if not tfma_blessed:  # which of TFMA's two rules failed, from the same segments' figures
        segments, drop = candidate.segment_accuracy, gate.max_accuracy_drop
        if segments < gate.min_accuracy:
            why = f"segment accuracy {segments:.3f} < bar {gate.min_accuracy:.3f}"
        elif baseline is not None and segments < baseline.segment_accuracy - drop:
            why = (f"segment accuracy {segments:.3f} regressed from the last blessed model's "
                   f"{baseline.segment_accuracy:.3f} by more than {drop:.3f}")
        else:
            why = "segment accuracy below the bar or regressed"
        reasons.append(f"TFMA did not bless the model ({why}; see the Evaluator's validation result)")
    if candidate.clip_accuracy < gate.min_clip_accuracy:
        reasons.append(f"clip accuracy {candidate.clip_accuracy:.3f} < bar {gate.min_clip_accuracy:.3f}")
    if baseline is not None and candidate.clip_accuracy < baseline.clip_accuracy - gate.max_accuracy_drop:
        reasons.append(f"clip accuracy {candidate.clip_accuracy:.3f} regressed from the last blessed model's "
                       f"{baseline.clip_accuracy:.3f} by more than {gate.max_accuracy_drop:.3f}")
    return GateDecision(blessed=not reasons, reasons=reasons)


def build_report(config: PipelineConfig, decision: GateDecision, tfma_blessed: bool, candidate: metrics.Scores,
                 baseline: Optional[metrics.Scores], tfma_flat: dict[str, float],
                 baseline_decision: str = "") -> dict[str, Any]:
    """The gate's report (clip_metrics.json): decision, baseline and why, clip, segment, per-genre and TFMA figures."""
    report = {"split": GATE_SPLIT, "split_protocol": config.split.protocol, "genres": list(config.genres),
              "blessed": decision.blessed, "reasons": decision.reasons, "tfma_blessed": tfma_blessed,
              "baseline_decision": baseline_decision}
    for prefix, scores in (("candidate_", candidate), ("baseline_", baseline)):
        if scores is not None:  # per-genre clip accuracy, recall and precision and the clip confusion, by genre
            report.update({**scores.as_dict(prefix), f"{prefix}per_genre": scores.per_genre(config.genres),
                           f"{prefix}clip_confusion": scores.confusion_by_genre(config.genres)})
    return {**report, **tfma_flat}


def per_genre_lines(report: dict[str, Any], width: int = 110) -> list[str]:
    """The run summary's per-genre clip accuracy, "blues 0.75 (4)" (4 clips), "-" where a genre has no test clip."""
    figures = report.get("candidate_per_genre")
    if not figures:  # a report written before the per-genre figures existed
        return []
    cells = []
    for genre in report.get("genres") or sorted(figures):
        accuracy, clips = figures[genre]["clip_accuracy"], figures[genre]["clips"]
        cells.append(f"{genre} {'-' if accuracy is None else f'{accuracy:.2f}'} ({clips})")
    lines, line = [], "  per-genre clip accuracy (clips):"
    for i, cell in enumerate(cells):  # whole cells per line, never one cut in two
        text = cell + ("," if i < len(cells) - 1 else "")
        if len(line) + 1 + len(text) > width:
            lines, line = lines + [line], "   "
        line += " " + text
    return lines + [line]


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        config = PipelineConfig.from_json(exec_properties["pipeline_config_json"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        # The same baseline rule as the Evaluator: a model that reads these examples and never trained on them.
        baselines, baseline_decision = comparable_baseline(input_dict)
        baseline_model = (baselines or [None])[0]
        tfma_blessing = artifact_utils.get_single_instance(input_dict["tfma_blessing"])
        evaluation = artifact_utils.get_single_instance(input_dict["evaluation"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])

        same_model = baseline_model is not None and baseline_model.id == model.id
        # Candidate and baseline score each batch in one pass; the released model itself (a cached re-run) once.
        to_score = [model] if baseline_model is None or same_model else [model, baseline_model]
        scored = score_split(examples, GATE_SPLIT, to_score)
        candidate = scored[0].score()
        baseline = None if baseline_model is None else scored[-1].score()
        tfma_blessed = tfma_blessing.get_int_custom_property("blessed") == 1
        decision = decide(config, tfma_blessed, candidate, baseline, candidate_is_baseline=same_model)

        report = build_report(config, decision, tfma_blessed, candidate, baseline,
                              tfma_metrics(evaluation, config.genres), baseline_decision)
        tf.io.gfile.makedirs(blessing.uri)
        write_report(os.path.join(blessing.uri, METRICS_FILE), report)
        with tf.io.gfile.GFile(os.path.join(blessing.uri, "BLESSED" if decision.blessed else "NOT_BLESSED"), "w"):
            pass
        # The same custom properties TFX's Evaluator writes, so LatestBlessedModelStrategy and Pusher read ours.
        blessing.set_int_custom_property("blessed", int(decision.blessed))
        for role, artifact in (("current_model", model), ("baseline_model", baseline_model)):
            if artifact is not None:
                blessing.set_string_custom_property(role, artifact.uri)
                blessing.set_int_custom_property(f"{role}_id", artifact.id)
        blessing.set_float_custom_property("clip_accuracy", candidate.clip_accuracy)
        blessing.set_float_custom_property("segment_accuracy", candidate.segment_accuracy)

        verdict = "BLESSED" if decision.blessed else "NOT BLESSED: " + "; ".join(decision.reasons)
        print(f"[gate] held-out '{GATE_SPLIT}' split ({config.split.protocol} protocol): segment accuracy "
              f"{candidate.segment_accuracy:.3f} over {candidate.segments} segments, clip accuracy "
              f"{candidate.clip_accuracy:.3f} over {candidate.clips} clips"
              + (f"; last blessed model: clip accuracy {baseline.clip_accuracy:.3f}" if baseline else "")
              + f" -> {verdict}", flush=True)
        if same_model:
            print("[gate] MLflow left as it is: the model's run already records its release", flush=True)
        else:
            self._log_to_mlflow(config, model, report, candidate, scored[0].segment_confusion)

    @staticmethod
    def _log_to_mlflow(config: PipelineConfig, model: types.Artifact, report: dict[str, Any],
                       candidate: metrics.Scores, segment_confusion: np.ndarray) -> None:
        run_id = model.get_string_custom_property(tracking.RUN_ID_PROPERTY)
        if not run_id:
            print("[gate] the model has no MLflow run id; evaluation not logged to MLflow", flush=True)
            return
        import mlflow
        with tracking.resume_run(config, run_id):
            # The report's numbers (NaN and null left out) and the per-genre clip figures, "clip_recall/<genre>".
            mlflow.log_metrics(tracking.loggable_metrics(
                {**report, **metrics.per_genre_metrics(report["candidate_per_genre"])}))
            mlflow.log_metric("blessed", float(report["blessed"]))
            # The bars are tags, not parameters: changing one re-runs this gate on the same run.
            mlflow.set_tags({f"gate.{key}": str(value) for key, value in dataclasses.asdict(config.gate).items()})
            mlflow.set_tags({"blessed": str(report["blessed"]).lower(),
                             "gate_reasons": "; ".join(report["reasons"]) or "passed",
                            "gate_baseline": report["baseline_decision"]})
            with tempfile.TemporaryDirectory() as tmp:
                for matrix, name, title in ((candidate.clip_confusion, "test_clip_confusion.png", "clip level"),
                                            (segment_confusion, "test_segment_confusion.png", "segment level")):
                    mlflow.log_artifact(plots.confusion_matrix_png(
                        matrix, config.genres, os.path.join(tmp, name), f"held-out test split, {title}"), "plots")
                path = os.path.join(tmp, METRICS_FILE)
                write_report(path, report)
                mlflow.log_artifact(path, "evaluation")
