"""The page (app/page.py) through Streamlit's AppTest, against the TF Serving test double.

Real gRPC to serving/stand_in_server.py (TF Serving's binary cannot run here) serving the
stand-in SavedModel from tests/testkit/serving.py, whose genre follows the clip's loudness.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from app.settings import HOST_ENV, MAX_SECONDS_ENV, MLFLOW_ENV
from serving.conftest import host  # noqa: F401  (fixture: the test double serving the stand-in, version 1)
from tests.testkit.serving import build_stand_in_model, serving_endpoint, stand_in_clip
from tests.page_driver import PAGE, RATE, encode, open_page, texts, upload


@pytest.fixture
def page(monkeypatch, tmp_path, host):
    """A fresh page pointed at the test double serving the stand-in."""
    return open_page(monkeypatch, tmp_path, host)


def test_upload_shows_genre_bars_timeline_and_model_version(page):
    at = upload(page, "song.flac", encode(stand_in_clip("classical", seconds=12.0)))
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)
    assert "<div class='genre-top'>classical</div>" in shown
    assert "4 of 4 segments voted classical" in shown
    assert "version 1" in shown and "no MLflow store" in shown
    assert len(at.get("vega_lite_chart")) == 3  # genre bars, segment timeline, waveform
    assert len(at.image) == 1  # log-mel spectrogram
    assert len(at.get("audio")) == 1  # playback


def test_the_timeline_steps_by_the_hop_the_model_returns(monkeypatch, tmp_path):
    """A model exported with overlapping segments (--hop-seconds 1.5): 12 s give 7 segments 1.5 s apart."""
    base = tmp_path / "models" / "genre"
    build_stand_in_model(base, version=1, hop_seconds=1.5)
    with serving_endpoint(base) as target:
        at = open_page(monkeypatch, tmp_path, target)
        shown = texts(upload(at, "song.flac", encode(stand_in_clip("jazz", seconds=12.0))))
    assert "7 of 7 segments voted jazz" in shown
    assert "(7 × 1.5 s;" in shown


def test_recording_is_classified(page):
    page.audio_input(key="record").set_value(("clip.wav", encode(stand_in_clip("metal", 6.0), "WAV"), "audio/wav"))
    page.run()
    assert "<div class='genre-top'>metal</div>" in texts(page)


def test_a_recording_too_quiet_to_judge_gets_its_message_and_no_request(page):
    quiet = stand_in_clip("blues", 6.0) * 10 ** (-20 / 20)  # -34 dBFS - 20 dB: under the page's -50 dBFS, over silence
    page.audio_input(key="record").set_value(("clip.wav", encode(quiet, "WAV"), "audio/wav"))
    page.run()
    errors = [e.value for e in page.error]
    assert len(errors) == 1 and errors[0].startswith("recording.wav is too quiet to judge"), errors
    assert "<div class='genre-top'>" not in texts(page)


BAD_CLIPS = [
    ("empty.wav", b"", "empty.wav is empty (0 bytes)"),
    ("notes.mp3", b"these are not audio bytes" * 40, "notes.mp3 could not be decoded as audio"),
    ("short.flac", encode(stand_in_clip("rock", 1.5)), "short.flac is 1.5 s long; the model judges 3-s segments"),
    ("silent.flac", encode(np.zeros(5 * RATE, np.float32)), "silent.flac is silent (digital silence, below -60 dBFS)"),
    ("hiss.flac", encode(np.random.default_rng(0).normal(0, 0.1, 5 * RATE).astype(np.float32)),
     "hiss.flac is too noisy to judge: it sounds like steady noise"),
]


@pytest.mark.parametrize("name,data,message", BAD_CLIPS, ids=[name for name, _, _ in BAD_CLIPS])
def test_bad_clip_gets_its_message_and_no_request(page, name, data, message):
    at = upload(page, name, data)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert "<div class='genre-top'>" not in texts(at)


def test_clip_over_the_limit_is_refused(page, monkeypatch):
    monkeypatch.setenv(MAX_SECONDS_ENV, "6")
    at = upload(page, "long.flac", encode(stand_in_clip("jazz", 7.0)))
    assert [e.value for e in at.error] == [
        "long.flac is 0.1 min long, over this page's limit of 0.1 min per request to the model server "
        "(serving.max_clip_seconds). Trim the clip, or start the page with a higher GENRE_APP_MAX_SECONDS."]


def test_server_down_names_the_command_that_starts_one(monkeypatch, tmp_path):
    from conftest import free_port

    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    at = open_page(monkeypatch, tmp_path, down)
    assert any("make serve" in w.value for w in at.warning)  # the sidebar says so before any upload
    at = upload(at, "song.flac", encode(stand_in_clip("pop", 6.0)))
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"Cannot reach the model server at {down} (model 'genre'). Start one with `make serve`")


def test_page_process_never_loads_the_tensorflow_runtime(host, tmp_path):
    """The whole flow (upload, gRPC, charts) in a fresh interpreter; TF's runtime stays unloaded."""
    clip = tmp_path / "song.flac"
    clip.write_bytes(encode(stand_in_clip("disco", 6.0)))
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({PAGE!r}, default_timeout=120)
        at.run()
        at.file_uploader(key="upload").set_value(("song.flac", open({str(clip)!r}, "rb").read(), "audio/flac"))
        at.run()
        shown = "".join(m.value for m in at.markdown)
        assert "<div class='genre-top'>disco</div>" in shown, [e.value for e in at.error]
        loaded = sorted(m for m in sys.modules if m.startswith(("tensorflow.python", "keras", "tf_keras")))
        print("LOADED", loaded)
        sys.exit(1 if loaded else 0)
    """)
    env = {**os.environ, HOST_ENV: host, MLFLOW_ENV: f"sqlite:///{tmp_path / 'none.db'}"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "LOADED []" in result.stdout
