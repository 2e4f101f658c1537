"""Metric names and values the gate hands to MLflow, and the store the run bookkeeping opens."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from config.settings import PROJECT_ROOT
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


def test_run_bookkeeping_opens_only_the_configured_store(tmp_path):
    """local_runner closes orphaned runs at start and marks failed ones at the end. Both used to build an
    MlflowClient before pointing MLflow at the configured store, so MLflow 3 created its default store,
    ``mlflow.db``, in the working directory; two pipelines started at once raced to create its tables and one
    died ("table evaluation_datasets already exists", seen in CI). A fresh process, as a user's run is."""
    cwd, output_dir = tmp_path / "where_the_user_stands", tmp_path / "out"
    cwd.mkdir()
    script = ("import sys\nfrom models import tracking\nfrom config.settings import PathsConfig, PipelineConfig\n"
              f"config = PipelineConfig(paths=PathsConfig(output_dir={str(output_dir)!r}))\n"
              "tracking.close_orphaned_runs(config)\ntracking.mark_failed(config, 0, 'Trainer')\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, check=True, capture_output=True)
    assert os.listdir(cwd) == []
    assert (output_dir / "pipeline_root" / "mlflow.db").exists()
