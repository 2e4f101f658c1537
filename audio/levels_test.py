"""One amplitude rule and one silence rule (levels.py) for ingestion and the tagger."""
from __future__ import annotations

import numpy as np
import pytest

from audio import decode as audio_lib
from audio import levels
from tagging import files as tagging_files
from tests.testkit.audio_files import RATE, TEST_AUDIO, tone, wav_bytes


def dc_only() -> np.ndarray:
    return np.full(3 * RATE, 0.5, np.float32)


def hot() -> np.ndarray:
    return tone(3.0) * 1075.0  # a float WAV peaking at 537


@pytest.mark.parametrize("make, reason", [(dc_only, "silent"), (hot, "out_of_range"),
                                          (lambda: np.zeros(3 * RATE, np.float32), "silent"),
                                          (lambda: tone(3.0) + 0.3, None),        # music on an offset: kept
                                          (lambda: tone(3.0) * 3.2, None),         # peak 1.6: clipped, kept
                                          # peak 2.3, as a loud Vorbis master resampled to 32 kHz: kept
                                          (lambda: tone(3.0) * 4.6, None),
                                          (lambda: tone(3.0) * 8.4, "out_of_range")],  # peak 4.2
                         ids=["dc_only", "out_of_range", "zeros", "music_on_dc", "peak_1.6", "peak_2.3", "peak_4.2"])
def test_ingestion_and_the_tagger_apply_the_same_rule(tmp_path, make, reason):
    path = tmp_path / "x.wav"
    path.write_bytes(wav_bytes(make(), subtype="FLOAT"))
    try:
        audio_lib.load(path.read_bytes(), RATE, TEST_AUDIO.segment_samples, TEST_AUDIO.silence_dbfs)
        ingested = None
    except audio_lib.BadAudio as bad:
        ingested = bad.reason
    tagged = tagging_files.decode_file(str(path), "x.wav", TEST_AUDIO).get("reason")
    assert ingested == tagged == reason


def test_dc_is_removed_before_the_silence_test_and_long_clips_are_measured_in_chunks():
    assert levels.check(dc_only(), -60.0).reason == "silent"
    long = np.full(3 * (1 << 20) + 17, 0.25, np.float32)
    long[::2] = -0.25  # a square wave at -12 dBFS around 0
    assert levels.level_dbfs(long + 0.5) == pytest.approx(-12.04, abs=0.01)
    int16 = (tone(1.0) * 32767).astype(np.int16)
    assert levels.peak(int16) <= 1.0 and levels.check(int16, -60.0) is None


def test_the_serving_graph_uses_the_same_peak():
    from models import signatures

    assert signatures.MAX_PEAK == levels.MAX_PEAK
