"""The clip gate's decision (bars, a test split that can judge) and its strict-JSON report."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from components.clip_evaluator.executor import (ALREADY_RELEASED, build_report, decide, per_genre_lines,
                                                score_split, write_report)
from config.settings import GATE_SPLIT, PipelineConfig
from models import metrics
from models.signatures import EXAMPLES_SIGNATURE
from tests.testkit.gate_reports import assert_per_genre_consistent, strict_loads

GENRES3 = ("ambient", "drill", "polka")


def config(genres: tuple[str, ...] = GENRES3, **gate) -> PipelineConfig:
    base = PipelineConfig()
    return dataclasses.replace(base, genres=genres, gate=dataclasses.replace(base.gate, **gate))


def scores(clip_labels: list[int], num_classes: int = len(GENRES3), right: bool = True) -> metrics.Scores:
    """Real metrics.score on one segment per clip, every clip right (or every clip wrong)."""
    labels = np.array(clip_labels)
    predicted = labels if right else (labels + 1) % num_classes
    probabilities = np.eye(num_classes)[predicted]
    track_ids = np.array([f"t{i}".encode() for i in range(len(labels))])
    return metrics.score(track_ids, probabilities, labels)


def test_enough_clips_of_every_genre_and_good_accuracy_is_blessed():
    decision = decide(config(min_test_clips=6), True, scores([0, 1, 2] * 2), None)
    assert decision.blessed and decision.reasons == []


def test_too_few_test_clips_refuses_and_names_count_and_fix():
    decision = decide(config(min_test_clips=10), True, scores([0, 1, 2] * 3), None)
    assert not decision.blessed
    [reason] = decision.reasons
    assert "9 clips" in reason and "--min-test-clips 10" in reason and "--split-ratios" in reason


def test_a_genre_missing_from_the_test_split_refuses_and_names_it():
    decision = decide(config(min_test_clips=4), True, scores([0, 2, 0, 2, 0, 2]), None)
    assert not decision.blessed
    [reason] = decision.reasons
    assert "drill" in reason and "1 of the 3 genres" in reason and "ambient" not in reason


def test_thin_split_reasons_come_with_the_accuracy_reasons():
    decision = decide(config(min_test_clips=50), False, scores([0, 0, 0], right=False), None)
    assert not decision.blessed
    text = "; ".join(decision.reasons)
    assert "3 clips" in text and "drill, polka" in text and "TFMA did not bless" in text and "clip accuracy 0.000" in text


def test_gtzan_label_set_counts_all_ten_genres():
    ten = PipelineConfig().genres
    decision = decide(config(genres=ten, min_test_clips=10), True, scores(list(range(9)) * 2, num_classes=10), None)
    assert not decision.blessed and ten[9] in decision.reasons[0]


def test_regression_against_baseline_still_refuses():
    good = scores([0, 1, 2] * 4)
    worse = scores([0, 1, 2] * 4, right=False)
    decision = decide(config(), True, worse, good)
    assert not decision.blessed and any("regressed" in r for r in decision.reasons)


def test_tfmas_refusal_names_the_rule_that_failed_with_its_figures():
    """One wrong segment of 70 against the champion's none: TFMA's -0.01 rule refuses, the reason says so."""
    def segments(wrong: int) -> metrics.Scores:
        labels = np.array([0, 1, 2] * 23 + [0])
        predicted = np.where(np.arange(len(labels)) < wrong, (labels + 1) % 3, labels)
        tracks = np.array([f"{label}-{i % 4}".encode() for i, label in enumerate(labels)])  # one genre a track
        return metrics.score(tracks, np.eye(3)[predicted], labels)
    regressed = decide(config(min_test_clips=1), False, segments(1), segments(0))
    assert ("TFMA did not bless the model (segment accuracy 0.986 regressed from the last blessed model's 1.000 by "
            "more than 0.010;") in "; ".join(regressed.reasons), regressed.reasons
    low = decide(config(min_test_clips=1, min_accuracy=0.99), False, segments(1), None)
    assert "TFMA did not bless the model (segment accuracy 0.986 < bar 0.990;" in "; ".join(low.reasons), low.reasons


def test_the_released_model_is_not_released_again():
    decision = decide(config(min_test_clips=1000), True, scores([0]), None, candidate_is_baseline=True)
    assert decision.reasons == [ALREADY_RELEASED]


def test_report_is_strict_json_with_null_for_nan(tmp_path):
    path = tmp_path / "clip_metrics.json"
    report = {"blessed": False, "test_overall_Precision_polka": float("nan"), "inf": np.float32("inf"),
              "clips": np.int64(12), "candidate_clip_accuracy": 0.75, "reasons": ["x"], "nested": [math.nan]}
    with pytest.raises(ValueError):  # what a plain json.dump writes: rejected by a strict parser
        strict_loads(json.dumps(report, default=float))
    write_report(str(path), report)
    data = strict_loads(path.read_text())
    assert data["test_overall_Precision_polka"] is None and data["inf"] is None and data["nested"] == [None]
    assert data["clips"] == 12 and data["candidate_clip_accuracy"] == 0.75 and data["blessed"] is False


BASELINE_LINE = "comparing with the last blessed model #7 (same input format, ...)"


def written_report(tmp_path) -> dict:
    """A gate report written and read back strictly: ambient 2 of 3 clips right (one called polka),
    drill 2 of 2, polka 1 of 1; the baseline gets every clip wrong."""
    labels, predicted = [0, 0, 0, 1, 1, 2], [0, 0, 2, 1, 1, 2]
    probabilities = np.eye(3)[predicted] * 0.7 + 0.1
    track_ids = np.array([f"t{i}".encode() for i in range(len(labels))])
    candidate = metrics.score(track_ids, probabilities, np.array(labels))
    baseline = scores(labels, right=False)
    tfma_flat = {"test_overall_top1_precision_polka": float("nan"), "test_overall_top1_recall_polka": 1.0}
    report = build_report(config(min_test_clips=6), decide(config(min_test_clips=6), True, candidate, None),
                          True, candidate, baseline, tfma_flat, BASELINE_LINE)
    path = tmp_path / "clip_metrics.json"
    write_report(str(path), report)
    return strict_loads(path.read_text())  # no NaN or Infinity anywhere


def test_gate_report_holds_per_genre_numbers_in_strict_json(tmp_path):
    data = written_report(tmp_path)

    assert data["genres"] == list(GENRES3) and data["blessed"] is True
    per_genre, matrix = data["candidate_per_genre"], data["candidate_clip_confusion"]
    assert set(per_genre) == set(matrix) == set(GENRES3) and all(set(row) == set(GENRES3) for row in matrix.values())
    assert matrix["ambient"] == {"ambient": 2, "drill": 0, "polka": 1}
    assert per_genre["ambient"] == {"clips": 3, "predicted_clips": 2, "clip_accuracy": pytest.approx(2 / 3),
                                    "clip_recall": pytest.approx(2 / 3), "clip_precision": 1.0}
    assert per_genre["polka"]["clip_precision"] == 0.5 and per_genre["drill"]["clip_recall"] == 1.0
    assert data["test_overall_top1_precision_polka"] is None and data["test_overall_top1_recall_polka"] == 1.0
    assert data["baseline_per_genre"]["drill"]["clip_recall"] == 0.0
    assert_per_genre_consistent(data, "candidate_")
    assert_per_genre_consistent(data, "baseline_")


def test_run_summary_lines_name_every_genre_and_mark_the_absent_one():
    report = {"genres": ["ambient", "drill", "polka"], "candidate_per_genre": {
        "ambient": {"clip_accuracy": 0.75, "clips": 4}, "drill": {"clip_accuracy": 1.0, "clips": 2},
        "polka": {"clip_accuracy": None, "clips": 0}}}
    assert per_genre_lines(report) == ["  per-genre clip accuracy (clips): ambient 0.75 (4), drill 1.00 (2), polka - (0)"]
    wrapped = per_genre_lines(report, width=50)
    assert len(wrapped) > 1 and all(len(line) <= 50 for line in wrapped)
    assert " ".join(wrapped).count("(") == 4  # every cell whole (the title's "(clips)" and three genres)
    assert per_genre_lines({"candidate_clip_accuracy": 0.5}) == []  # a report from before per-genre figures


def test_the_run_summary_prints_the_per_genre_clip_accuracy(tmp_path, capsys):
    from local_run.summary import print_summary

    summary = {"gate": written_report(tmp_path), "pipeline_root": str(tmp_path), "seconds": 1.0}
    print_summary(summary, "push")
    lines = capsys.readouterr().out.splitlines()
    assert "  per-genre clip accuracy (clips): ambient 0.67 (3), drill 1.00 (2), polka 1.00 (1)" in lines
    assert f"  baseline: {BASELINE_LINE}" in lines  # which model the no-regression bar was held against


def segment_example(track: int, segment: int) -> bytes:
    """A raw segment as the gate reads it: label, track id and segment index (no audio: the test models
    compute their scores from these)."""
    feature = {"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[track % len(GENRES3)])),
               "track_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"track{track:02d}".encode()])),
               "segment_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[segment]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def examples_artifact(root, files: list[list[bytes]]):
    """An Examples artifact whose test split is the given gzipped TFRecord files."""
    from tfx.types import artifact_utils, standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = artifact_utils.encode_split_names([GATE_SPLIT])
    split_dir = root / "examples" / f"Split-{GATE_SPLIT}"
    split_dir.mkdir(parents=True)
    for i, records in enumerate(files):
        with tf.io.TFRecordWriter(str(split_dir / f"data_tfrecord-{i:05d}-of-{len(files):05d}.gz"), "GZIP") as writer:
            for record in records:
                writer.write(record)
    return examples


class SegmentScorer(tf.Module):
    """A model with the examples signature: softmax of a fixed function of label and segment index, so
    its answers differ between segments of one track and some are wrong."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = tf.constant(weight)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def from_examples(self, examples):
        parsed = tf.io.parse_example(examples, {"label": tf.io.FixedLenFeature([], tf.int64),
                                                "segment_index": tf.io.FixedLenFeature([], tf.int64)})
        right = tf.one_hot(parsed["label"], len(GENRES3))
        other = tf.one_hot((parsed["label"] + 1 + parsed["segment_index"] % 2) % len(GENRES3), len(GENRES3))
        wobble = tf.cast(parsed["segment_index"] % 5, tf.float32)[:, None] * tf.constant([[0.3, -0.2, 0.1]])
        return {"probabilities": tf.nn.softmax(right + self.weight * other + wobble)}


def model_artifact(root, name: str, weight: float):
    from tfx.types import standard_artifacts
    from tfx.utils import path_utils

    model = standard_artifacts.Model()
    model.uri = str(root / name)
    scorer = SegmentScorer(weight)
    tf.saved_model.save(scorer, path_utils.serving_model_path(model.uri),
                        signatures={EXAMPLES_SIGNATURE: scorer.from_examples})
    return model


def whole_split_scores(records: list[bytes], model, batch: int) -> tuple[metrics.Scores, np.ndarray]:
    """The whole-array computation: every record in one array, predicted in chunks, scored at once."""
    from tfx.utils import path_utils

    signature = tf.saved_model.load(path_utils.serving_model_path(model.uri)).signatures[EXAMPLES_SIGNATURE]
    probabilities = np.concatenate([signature(examples=tf.constant(records[i:i + batch]))["probabilities"].numpy()
                                    for i in range(0, len(records), batch)])
    parsed = tf.io.parse_example(records, {"label": tf.io.FixedLenFeature([], tf.int64),
                                           "track_id": tf.io.FixedLenFeature([], tf.string)})
    labels, track_ids = parsed["label"].numpy(), parsed["track_id"].numpy()
    return (metrics.score(track_ids, probabilities, labels),
            metrics.confusion(labels, probabilities.argmax(axis=1), len(GENRES3)))


def test_streamed_scores_of_candidate_and_baseline_equal_the_whole_split_computation(tmp_path):
    # 11 tracks of 2..7 segments over two files, a track cut by every batch boundary of 4.
    records = [segment_example(track, segment) for track in range(11) for segment in range(2 + track % 6)]
    examples = examples_artifact(tmp_path, [records[:23], records[23:]])
    candidate, baseline = model_artifact(tmp_path, "candidate", 1.4), model_artifact(tmp_path, "baseline", 0.6)

    streamed = score_split(examples, GATE_SPLIT, [candidate, baseline], batch_size=4)

    for model, accumulator in zip((candidate, baseline), streamed):
        expected, segment_confusion = whole_split_scores(records, model, batch=4)
        scores = accumulator.score()
        assert scores.as_dict() == expected.as_dict()  # exactly: the same sums in the same order
        np.testing.assert_array_equal(scores.clip_confusion, expected.clip_confusion)
        np.testing.assert_array_equal(accumulator.segment_confusion, segment_confusion)
        assert scores.per_genre(GENRES3) == expected.per_genre(GENRES3)
    assert (streamed[0].score().clips, streamed[0].score().segments) == (11, len(records))
    # The two models differ, and neither gets everything right: the comparison can fail.
    assert streamed[0].score().as_dict() != streamed[1].score().as_dict()
    assert 0 < streamed[1].score().segment_accuracy < 1


@pytest.mark.parametrize("files", [[], [[]]], ids=["no file", "a file of no records"])
def test_an_empty_test_split_is_refused_with_the_fix(tmp_path, files):
    examples = examples_artifact(tmp_path, files)
    model = model_artifact(tmp_path, "candidate", 1.0)
    with pytest.raises(ValueError, match="The 'test' split under .* holds no examples: nothing to gate on. "
                                         "Check the split protocol and the data root."):
        score_split(examples, GATE_SPLIT, [model])
