"""Driving the page (app/page.py) through Streamlit's AppTest: open it on a model server, upload a clip, read
what it shows. The page's tests and the MLflow champion's card test share it."""
from __future__ import annotations

import io
import os

import numpy as np
import soundfile as sf
from streamlit.testing.v1 import AppTest

from app.settings import HOST_ENV, MAX_SECONDS_ENV, MLFLOW_ENV

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "page.py")
RATE = 22050


def encode(waveform: np.ndarray, fmt: str = "FLAC", rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, rate, format=fmt)
    return buffer.getvalue()


def open_page(monkeypatch, tmp_path, host: str) -> AppTest:
    """A fresh page pointed at the model server at HOST; the MLflow store is absent (card shows why)."""
    monkeypatch.setenv(HOST_ENV, host)
    monkeypatch.setenv(MLFLOW_ENV, f"sqlite:///{tmp_path / 'absent' / 'mlflow.db'}")
    monkeypatch.delenv(MAX_SECONDS_ENV, raising=False)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str = "audio/flac") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, mime))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    return "\n".join(e.value for e in list(at.markdown) + list(at.caption))
