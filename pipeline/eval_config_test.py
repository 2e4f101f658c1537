"""The Evaluator's per-genre precision and recall are top-1, checked by running TFMA on known predictions.

TFMA (on Beam's DirectRunner) evaluates the pipeline's own EvalConfig on a small table of
labels and probabilities, and the clip gate's ``tfma_metrics`` reads the result back, as
in a run. Several segments are right by argmax with a top probability under 0.5, where a
0.5-threshold recall (what the Evaluator reported before) would count them as misses.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import tensorflow_model_analysis as tfma
from tfx.types import standard_artifacts

from components.clip_evaluator.executor import tfma_metrics
from config.settings import PipelineConfig
from pipeline.pipeline import TOP1_PREFIX, eval_config

GENRES = ("ambient", "drill", "polka", "zydeco")
# (label, probabilities): argmax right with 0.45, 0.4 (a 0.5 threshold would miss these), wrong, sure.
# Zydeco is never the argmax: recall 0, precision undefined (TFMA's default top-k threshold said 1.0).
SEGMENTS = [
    (0, [0.45, 0.35, 0.15, 0.05]), (0, [0.40, 0.30, 0.25, 0.05]), (0, [0.20, 0.70, 0.05, 0.05]),
    (0, [0.85, 0.05, 0.05, 0.05]),
    (1, [0.30, 0.40, 0.25, 0.05]), (1, [0.60, 0.30, 0.05, 0.05]), (1, [0.05, 0.85, 0.05, 0.05]),
    (2, [0.10, 0.40, 0.40 + 1e-3, 0.10 - 1e-3]), (2, [0.34, 0.33, 0.23, 0.10]), (2, [0.05, 0.05, 0.80, 0.10]),
    (3, [0.50, 0.10, 0.10, 0.30]), (3, [0.10, 0.10, 0.45, 0.35]),
]


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> dict[str, float]:
    base = PipelineConfig()  # no baseline here, so no change threshold (TFMA refuses one without a baseline)
    config = dataclasses.replace(base, genres=GENRES, gate=dataclasses.replace(base.gate, compare_to_last_blessed=False))
    table = pd.DataFrame({"label": [label for label, _ in SEGMENTS],
                          "probabilities": [np.array(p, dtype=np.float32) for _, p in SEGMENTS],
                          "genre": [GENRES[label] for label, _ in SEGMENTS]})
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path_factory.mktemp("tfma"))
    tfma.analyze_raw_data(table, eval_config(config), output_path=evaluation.uri)
    return tfma_metrics(evaluation, GENRES)


def hand_counts() -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([label for label, _ in SEGMENTS])
    return labels, np.array([p for _, p in SEGMENTS]).argmax(axis=1)


def test_per_genre_recall_is_the_share_of_its_segments_whose_argmax_is_the_genre(flat):
    labels, predicted = hand_counts()
    for c, genre in enumerate(GENRES):
        assert flat[f"test_overall_{TOP1_PREFIX}recall_{genre}"] == pytest.approx(np.mean(predicted[labels == c] == c))
    # What a 0.5 threshold would have said for ambient: only 1 of 4; top-1 says 3 of 4.
    assert flat[f"test_overall_{TOP1_PREFIX}recall_ambient"] == pytest.approx(0.75)


def test_per_genre_precision_is_the_share_of_segments_predicted_as_the_genre_that_are_it(flat):
    labels, predicted = hand_counts()
    for c, genre in enumerate(GENRES[:3]):
        assert flat[f"test_overall_{TOP1_PREFIX}precision_{genre}"] == pytest.approx(np.mean(labels[predicted == c] == c))


def test_a_genre_never_predicted_has_recall_zero_and_no_precision(flat):
    assert flat[f"test_overall_{TOP1_PREFIX}recall_zydeco"] == 0.0
    assert np.isnan(flat[f"test_overall_{TOP1_PREFIX}precision_zydeco"])  # null in the gate's JSON


def test_top1_recall_equals_the_accuracy_of_the_genre_slice(flat):
    for genre in GENRES:
        assert flat[f"test_overall_{TOP1_PREFIX}recall_{genre}"] == pytest.approx(
            flat[f"test_genre_{genre}_sparse_categorical_accuracy"])
