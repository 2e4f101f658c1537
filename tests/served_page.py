"""The page as a browser sees it: `make serve`'s script on a free port (the TF Serving test double, serving the
stand-in model of tests/testkit/serving.py) and `streamlit run app/page.py` pointed at it. Fixtures of the browser
tests (upload and microphone)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app import browser
from app.settings import AppSettings
from config.local_http import stop_process
from tests.testkit.serving import build_stand_in_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`make serve`'s script on a free port, forced onto the test double; yields host:port."""
    base = tmp_path_factory.mktemp("serve") / "genre"
    build_stand_in_model(base, version=3)
    port = browser.free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--serving-dir", str(base),
                                "--port", str(port), "--no-docker"], stdout=subprocess.PIPE, text=True)
    try:
        announced = process.stdout.readline()
        ready = process.stdout.readline()  # the test double's "serving genre from ... on HOST:PORT"
        assert "TEST DOUBLE" in announced and "latest version 3" in announced, announced
        assert ready.startswith("serving genre from") and ready.strip().endswith(f"127.0.0.1:{port}"), ready
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def page_url(served, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    settings = AppSettings(host=served, mlflow_uri=f"sqlite:///{tmp / 'no-store' / 'mlflow.db'}")
    with browser.running_page(settings, str(tmp / "streamlit.log")) as url:
        yield url
