"""The clip gate's decision (bars, a test split that can judge) and its strict-JSON report."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from components.clip_evaluator.executor import ALREADY_RELEASED, decide, write_report
from models import metrics
from pipeline.config import PipelineConfig

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


def test_the_released_model_is_not_released_again():
    decision = decide(config(min_test_clips=1000), True, scores([0]), None, candidate_is_baseline=True)
    assert decision.reasons == [ALREADY_RELEASED]


def _strict(text: str):
    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_report_is_strict_json_with_null_for_nan(tmp_path):
    path = tmp_path / "clip_metrics.json"
    report = {"blessed": False, "test_overall_Precision_polka": float("nan"), "inf": np.float32("inf"),
              "clips": np.int64(12), "candidate_clip_accuracy": 0.75, "reasons": ["x"], "nested": [math.nan]}
    with pytest.raises(ValueError):  # what a plain json.dump writes: rejected by a strict parser
        _strict(json.dumps(report, default=float))
    write_report(str(path), report)
    data = _strict(path.read_text())
    assert data["test_overall_Precision_polka"] is None and data["inf"] is None and data["nested"] == [None]
    assert data["clips"] == 12 and data["candidate_clip_accuracy"] == 0.75 and data["blessed"] is False
