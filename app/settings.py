"""Where the page finds the model server, the model and MLflow: flags (`python -m app`) or env."""
from __future__ import annotations

import dataclasses
import math
import os

from config.settings import PROJECT_ROOT, PipelineConfig

HOST_ENV, MODEL_ENV, MLFLOW_ENV, MAX_SECONDS_ENV = (
    "GENRE_SERVING_HOST", "GENRE_MODEL", "GENRE_MLFLOW_URI", "GENRE_APP_MAX_SECONDS")
DEFAULT_HOST = "127.0.0.1:8500"
DEFAULT_MODEL = "genre"
# The serving signatures refuse longer clips; the page refuses them first, instead of sending 100 MB for an error.
DEFAULT_MAX_SECONDS = PipelineConfig().serving.max_clip_seconds
# The largest upload that fits the cap: max_seconds of 16-bit stereo at 48 kHz (a float WAV must be converted).
UPLOAD_BYTES_PER_SECOND = 48000 * 2 * 2


def upload_limit_bytes(max_seconds: float) -> int:
    """Bytes an upload may have: whole MB, as Streamlit's ``server.maxUploadSize`` counts them."""
    return upload_limit_mb(max_seconds) * 2**20


def upload_limit_mb(max_seconds: float) -> int:
    return max(1, math.ceil(max_seconds * UPLOAD_BYTES_PER_SECOND / 2**20))


def short_uri(uri: str) -> str:
    """A tracking URI as the page shows it, without the machine's layout (repository-relative, or the last parts)."""
    if not uri.startswith("sqlite:///"):
        return uri
    path = uri[len("sqlite:///"):]
    root = str(PROJECT_ROOT)
    if path.startswith(root + os.sep):
        return "sqlite:///" + os.path.relpath(path, root)
    parts = path.split(os.sep)
    return "sqlite:///…/" + "/".join(parts[-2:]) if len(parts) > 3 else uri


@dataclasses.dataclass(frozen=True)
class AppSettings:
    host: str = DEFAULT_HOST
    model: str = DEFAULT_MODEL
    mlflow_uri: str = ""  # "" = the run's own default store (PipelineConfig().mlflow_tracking_uri)
    max_seconds: float = DEFAULT_MAX_SECONDS
    timeout: float = 30.0  # seconds per Predict call: a 10-min clip on 2 cores takes a while

    @classmethod
    def from_env(cls, env: "os._Environ[str] | dict[str, str]" = os.environ) -> "AppSettings":
        max_seconds = env.get(MAX_SECONDS_ENV, "")
        return cls(host=env.get(HOST_ENV) or DEFAULT_HOST, model=env.get(MODEL_ENV) or DEFAULT_MODEL,
                   mlflow_uri=env.get(MLFLOW_ENV) or PipelineConfig().mlflow_tracking_uri,
                   max_seconds=float(max_seconds) if max_seconds else DEFAULT_MAX_SECONDS)

    def to_env(self) -> dict[str, str]:
        """The environment that makes a page process see these settings."""
        return {HOST_ENV: self.host, MODEL_ENV: self.model, MLFLOW_ENV: self.mlflow_uri,
                MAX_SECONDS_ENV: f"{self.max_seconds:g}"}
