"""Metric names and values the gate hands to MLflow."""
from __future__ import annotations

import math

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from models.tracking import loggable_metrics


def test_only_finite_numbers_are_logged_under_names_mlflow_accepts():
    values = {"clip_recall/hip-hop": 0.5, "clip_recall/r&b": np.float32(0.25), "clips": np.int64(12),
              "blessed": True, "split": "test", "clip_precision/polka": None, "tfma_nan": math.nan,
              "inf": float("inf"), "per_genre": {"polka": {"clip_recall": 1.0}}}
    logged = loggable_metrics(values)
    assert logged == {"clip_recall/hip-hop": 0.5, "clip_recall/r_b": 0.25, "clips": 12.0}
    for name in logged:
        _validate_metric_name(name)  # MLflow's own check: raises on a name it refuses


def test_mlflow_would_refuse_the_unsanitised_genre_name():
    with pytest.raises(MlflowException):  # why loggable_metrics rewrites it
        _validate_metric_name("clip_recall/r&b")
