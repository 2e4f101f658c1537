"""The registered champion loads with MLflow's own loader and agrees with the gRPC path.

Real MLflow (a `mlflow server` on 127.0.0.1, the root conftest's fixture), the registrar's
own code path (register_pushed_model), real gRPC. The SavedModel is the serving stand-in
(tests/testkit/serving.py): a real SavedModel with the serving contract, cheap to build; training
one here would cost minutes. The gRPC server is the TF Serving test double (TF Serving's
binary cannot run here).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from components.model_registrar.executor import register_pushed_model
from config.settings import PathsConfig, PipelineConfig
from models import tracking
from serving.client import predict_waveform
from tests.testkit.serving import build_stand_in_model, serving_endpoint, stand_in_clip

SERVING_VERSION = 7
RATE = PipelineConfig().audio.sample_rate


@pytest.fixture(scope="module")
def champion(mlflow_server, tmp_path_factory):
    import mlflow

    tmp = tmp_path_factory.mktemp("champion")
    base = tmp / "serving" / "genre"
    pushed = build_stand_in_model(base, version=SERVING_VERSION, genre_shift=3)  # not the identity mapping
    config = dataclasses.replace(PipelineConfig(), paths=PathsConfig(
        output_dir=str(tmp), mlflow_tracking_uri=mlflow_server))
    with tracking.training_run(config, run_name="champion-test") as run:
        mlflow.log_metrics({"candidate_clip_accuracy": 0.875, "candidate_clips": 40})
    registered = register_pushed_model(config, run.info.run_id, str(SERVING_VERSION), pushed)
    with serving_endpoint(base) as host:
        yield {"uri": mlflow_server, "run_id": run.info.run_id, "registered": registered, "host": host}


def test_champion_loads_with_pyfunc_and_matches_grpc(champion):
    import mlflow

    mlflow.set_tracking_uri(champion["uri"])
    model = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL}@{tracking.SERVING_ALIAS}")
    clips = [stand_in_clip(g, seconds=9.0, sample_rate=RATE) for g in ("blues", "hiphop", "rock")]
    frame = model.predict(pd.DataFrame({"waveform": clips, "sample_rate": [RATE] * len(clips)}))
    for clip, (_, row) in zip(clips, frame.iterrows()):
        served = predict_waveform(clip, RATE, host=champion["host"])
        assert row["genre"] == served.genre
        np.testing.assert_allclose([row[g] for g in served.genres], served.scores, rtol=1e-5, atol=1e-6)
    assert len(set(frame["genre"])) == 3  # three clips, three different answers: the comparison can fail
    one = model.predict(clips[0])  # a bare waveform at the pipeline's sample rate
    assert one["genre"].tolist() == [frame["genre"][0]]


def test_registry_version_points_at_run_and_serving_version(champion):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=champion["uri"], registry_uri=champion["uri"])
    version = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, tracking.SERVING_ALIAS)
    assert version.version == champion["registered"]
    assert version.run_id == champion["run_id"]
    assert version.tags["serving_version"] == str(SERVING_VERSION)


def test_page_names_the_model_that_answered(champion, monkeypatch):
    """The page's model card: family, held-out accuracy with protocol, champion, from MLflow."""
    from streamlit.testing.v1 import AppTest

    from app.settings import HOST_ENV, MLFLOW_ENV
    from tests import page_driver

    monkeypatch.setenv(HOST_ENV, champion["host"])
    monkeypatch.setenv(MLFLOW_ENV, champion["uri"])
    at = AppTest.from_file(page_driver.PAGE, default_timeout=120)
    at.run()
    page_driver.upload(at, "song.flac", page_driver.encode(stand_in_clip("blues", 6.0)))
    captions = " ".join(c.value for c in at.caption)
    protocol = PipelineConfig().split.protocol  # the run's tag (tracking.training_run)
    assert (f"version {SERVING_VERSION} · CNN · held-out clip accuracy 87.5% over 40 clips ('test' split, {protocol} "
            "protocol)") in captions
    assert f"MLflow run {champion['run_id'][:8]}" in captions and "champion" in captions
