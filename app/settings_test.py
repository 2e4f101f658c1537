"""Settings from the environment, and how the page shows a tracking URI."""
from __future__ import annotations

from app.settings import DEFAULT_HOST, AppSettings, short_uri
from config.settings import PROJECT_ROOT, PipelineConfig


def test_environment_overrides_defaults_and_round_trips():
    settings = AppSettings.from_env({"GENRE_SERVING_HOST": "serving:9000", "GENRE_MODEL": "m",
                                     "GENRE_MLFLOW_URI": "http://mlflow:5000", "GENRE_APP_MAX_SECONDS": "42"})
    assert (settings.host, settings.model, settings.mlflow_uri, settings.max_seconds) == (
        "serving:9000", "m", "http://mlflow:5000", 42.0)
    assert AppSettings.from_env(settings.to_env()) == settings
    defaults = AppSettings.from_env({})
    assert defaults.host == DEFAULT_HOST
    assert defaults.mlflow_uri == PipelineConfig().mlflow_tracking_uri
    assert defaults.max_seconds == PipelineConfig().serving.max_clip_seconds


def test_short_uri_hides_the_machine_layout():
    assert short_uri(f"sqlite:///{PROJECT_ROOT}/outputs/pipeline_root/mlflow.db") == \
        "sqlite:///outputs/pipeline_root/mlflow.db"
    assert short_uri("sqlite:////srv/runs/a/pipeline_root/mlflow.db") == "sqlite:///…/pipeline_root/mlflow.db"
    assert short_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
