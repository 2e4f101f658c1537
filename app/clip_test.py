"""The page's decode path: bounded by the upload limit and the header before anything is decoded."""
from __future__ import annotations

import numpy as np
import pytest

from app import clip
from app.__main__ import streamlit_command
from app.settings import DEFAULT_MAX_SECONDS, upload_limit_bytes, upload_limit_mb
from tests.testkit.audio_files import tone, wav_bytes, with_header


def test_the_page_sets_an_upload_limit_that_fits_the_clip_cap():
    command = streamlit_command(8501)
    limit = int(command[command.index("--server.maxUploadSize") + 1])
    assert limit == upload_limit_mb(DEFAULT_MAX_SECONDS) == 110  # 600 s of 16-bit stereo at 48 kHz
    assert limit < 200  # Streamlit's default
    assert upload_limit_bytes(DEFAULT_MAX_SECONDS) >= DEFAULT_MAX_SECONDS * 48000 * 2 * 2


def test_an_upload_over_the_limit_is_refused_before_it_is_decoded(monkeypatch):
    monkeypatch.setattr(clip, "read_audio", lambda *a: pytest.fail("decoded an upload over the limit"))
    data = b"\0" * (upload_limit_bytes(6.0) + 1)
    with pytest.raises(clip.ClipError, match=r"over this page's limit of 2 MB for a clip of at most 0.1 min"):
        clip.decode("big.wav", data, max_seconds=6.0)


def test_a_two_hour_header_is_refused_before_decoding(monkeypatch):
    from audio import decode as audio_lib

    monkeypatch.setattr(audio_lib, "_read_float", lambda *a: pytest.fail("decoded past the header check"))
    data = with_header(wav_bytes(tone(0.5)), data_size=2 * 3600 * 22050 * 2)
    with pytest.raises(clip.ClipError, match=r"long.wav is 120.0 min long, over this page's limit of 10 min"):
        clip.decode("long.wav", data, max_seconds=600.0)


@pytest.mark.parametrize("samples, words", [
    (np.full(5 * 22050, 0.5, np.float32), "dc.wav is silent (digital silence, below -60 dBFS)"),
    (tone(5.0) * 1075.0, "dc.wav is not on the audio scale: the samples peak at 537"),
])
def test_the_page_applies_the_amplitude_and_silence_rules(samples, words):
    with pytest.raises(clip.ClipError) as refused:
        clip.decode("dc.wav", wav_bytes(samples, subtype="FLOAT"), max_seconds=600.0)
    assert str(refused.value).startswith(words), str(refused.value)


def test_a_browser_recording_webm_opus_decodes(tmp_path):
    """MediaRecorder's WebM/Opus, with no stated length: decoded, and held to the cap as it is decoded."""
    from tests.testkit.library_files import encode_recording
    from tests.testkit.serving import stand_in_clip

    data = encode_recording(tmp_path / "recording", stand_in_clip("metal", 6.0, sample_rate=48000), 48000).read_bytes()
    decoded = clip.decode("recording.webm", data, max_seconds=600.0)
    assert decoded.sample_rate == 48000 and abs(decoded.seconds - 6.0) < 0.05
    with pytest.raises(clip.ClipError, match=r"recording.webm is longer than it says"):
        clip.decode("recording.webm", data, max_seconds=4.0)


@pytest.mark.parametrize("fmt", ["aac", "alac", "opus", "wma", "aiff", "mka"])
def test_uploads_in_the_library_formats_decode(tmp_path, fmt):
    from tests.testkit.library_files import encode as encode_file
    from tests.testkit.serving import stand_in_clip

    path = encode_file(tmp_path / "song", stand_in_clip("jazz", 6.0, sample_rate=44100), 44100, fmt)
    assert path.suffix.lstrip(".") in clip.AUDIO_EXTENSIONS  # the uploader's accepted types
    decoded = clip.decode(path.name, path.read_bytes(), max_seconds=600.0)
    assert abs(decoded.seconds - 6.0) < 0.1
