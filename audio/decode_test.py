"""Decoding and the per-file quality checks (no Beam, no TensorFlow)."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soxr

from audio import decode as audio_lib
from audio import levels
from testkit.audio_files import RATE, corrupt_wav_bytes, tone, truncated_wav_bytes, wav_bytes, with_header

SEGMENT = RATE  # 1 s


def load(data: bytes) -> audio_lib.DecodedAudio:
    return audio_lib.load(data, RATE, SEGMENT, silence_dbfs=-60.0)


def reason_of(data: bytes) -> str:
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(data)
    return caught.value.reason


def test_16_bit_mono_at_the_target_rate_is_read_losslessly():
    pcm = np.random.default_rng(1).integers(-32768, 32768, 2 * RATE).astype(np.int16)
    for fmt in ("WAV", "FLAC", "AU"):
        decoded = load(wav_bytes(pcm, fmt=fmt))
        assert decoded.lossless and decoded.samples.dtype == np.int16
        np.testing.assert_array_equal(decoded.samples, pcm)


@pytest.mark.parametrize("fmt,subtype", [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_lossy_formats_decode_to_float(fmt, subtype):
    decoded = load(wav_bytes(tone(2.0), fmt=fmt, subtype=subtype))
    assert decoded.samples.dtype == np.float32
    assert abs(len(decoded.samples) - 2 * RATE) < 0.05 * RATE  # codec padding/delay only
    assert -12 < levels.level_dbfs(decoded.samples) < -3  # a 0.5-amplitude sine is -9 dBFS


def test_wrong_sample_rate_is_resampled_not_quarantined():
    decoded = load(wav_bytes(tone(2.0, 44100, freq=1000), 44100))
    assert decoded.source_rate == 44100 and len(decoded.samples) == 2 * RATE
    # The tone survives at the same frequency: its spectral peak is at 1 kHz at 22050 Hz.
    spectrum = np.abs(np.fft.rfft(decoded.samples))
    assert abs(np.argmax(spectrum) * RATE / len(decoded.samples) - 1000) < 2


def test_stereo_is_downmixed_by_averaging_the_channels():
    rng = np.random.default_rng(2)
    left, right = (rng.integers(-20000, 20000, RATE + 10).astype(np.int16) for _ in range(2))
    decoded = load(wav_bytes(np.stack([left, right], axis=1)))
    assert decoded.source_channels == 2
    expected = (left.astype(np.float64) + right) / 2 / 32768
    np.testing.assert_array_equal(decoded.samples, expected.astype(np.float32))


def test_a_corrupt_file_like_gtzan_jazz_00054_is_undecodable():
    assert reason_of(corrupt_wav_bytes()) == audio_lib.UNDECODABLE


def test_a_truncated_flac_is_undecodable():
    whole = wav_bytes(tone(3.0, amplitude=0.3) + 0.05 * np.random.default_rng(3).standard_normal(3 * RATE)
                      .astype(np.float32), fmt="FLAC")
    assert reason_of(whole[:len(whole) // 2]) == audio_lib.UNDECODABLE


def test_a_truncated_wav_keeps_what_is_there_and_is_flagged():
    assert reason_of(truncated_wav_bytes(claimed_seconds=4.0, kept_seconds=0.3)) == audio_lib.TOO_SHORT
    decoded = load(truncated_wav_bytes(claimed_seconds=4.0, kept_seconds=1.5))
    assert len(decoded.samples) == int(1.5 * RATE) and decoded.truncated


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("AU", "PCM_16"),
                                         ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_whole_files_are_not_flagged_truncated(fmt, subtype):
    assert not load(wav_bytes(tone(2.0), fmt=fmt, subtype=subtype)).truncated


# ----- header plausibility and the memory bound ----------------------------------------------

def test_a_header_declaring_1_hz_is_refused_before_any_sample_is_read():
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(with_header(wav_bytes(tone(0.1)), rate=1))  # 2205 samples would be 2205 s at 1 Hz
    assert caught.value.reason == audio_lib.BAD_SAMPLE_RATE and "1 Hz" in caught.value.detail
    assert reason_of(with_header(wav_bytes(tone(2.0)), rate=audio_lib.MAX_RATE + 1)) == audio_lib.BAD_SAMPLE_RATE
    assert load(with_header(wav_bytes(tone(2.0)), rate=audio_lib.MIN_RATE)).source_rate == audio_lib.MIN_RATE


def test_a_header_declaring_more_than_the_cap_is_too_long():
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.load(with_header(wav_bytes(tone(2.0)), data_size=0xFFFFFFF0), RATE, SEGMENT, -60.0, max_seconds=1200)
    assert caught.value.reason == audio_lib.TOO_LONG and "declares 97391.5 s" in caught.value.detail


@pytest.mark.parametrize("rate,subtype", [(RATE, "PCM_16"), (44100, "PCM_16"), (RATE, "FLOAT")])
def test_decoded_audio_over_the_cap_is_too_long(rate, subtype):
    """Lossless path, resampled path, float path: none returns more than max_seconds."""
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.load(wav_bytes(tone(3.0, rate), rate, subtype=subtype), RATE, SEGMENT, -60.0, max_seconds=2.5)
    assert caught.value.reason == audio_lib.TOO_LONG
    assert len(audio_lib.load(wav_bytes(tone(3.0, rate), rate, subtype=subtype), RATE, SEGMENT, -60.0,
                          max_seconds=3.0).samples) == 3 * RATE


def test_absurd_channel_counts_are_refused():
    many = np.tile(tone(0.01)[:, None], (1, audio_lib.MAX_CHANNELS + 1))  # 220 frames, 65 channels
    assert reason_of(wav_bytes(many)) == audio_lib.IMPLAUSIBLE_HEADER


def test_block_wise_resampling_equals_resampling_the_whole_file():
    stereo = np.stack([tone(4.0, 44100, freq=440), tone(4.0, 44100, amplitude=0.2, freq=3000)], axis=1)
    assert len(stereo) > 2 * audio_lib.BLOCK_FRAMES  # several blocks
    decoded = load(wav_bytes(stereo, 44100, subtype="FLOAT"))
    whole = soxr.resample(stereo.mean(axis=1, dtype=np.float32), 44100, RATE, quality="HQ")
    np.testing.assert_array_equal(decoded.samples, whole)


def test_a_file_object_decodes_like_its_bytes(tmp_path):
    data = wav_bytes(tone(2.0, 44100), 44100)
    (tmp_path / "a.wav").write_bytes(data)
    with open(tmp_path / "a.wav", "rb") as f:
        np.testing.assert_array_equal(load(f).samples, load(data).samples)
    assert load(io.BytesIO(data)).source_rate == 44100


def test_empty_file_and_header_without_samples_are_empty():
    assert reason_of(b"") == audio_lib.EMPTY
    assert reason_of(wav_bytes(np.zeros(0, np.float32))) == audio_lib.EMPTY


def test_a_text_file_named_wav_is_not_audio():
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(b"hello, I am a text file\n" * 10)
    assert caught.value.reason == audio_lib.NOT_AUDIO and "hello" in caught.value.detail


def test_shorter_than_one_segment_is_too_short():
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(wav_bytes(tone(0.5)))
    assert caught.value.reason == audio_lib.TOO_SHORT and "0.500 s" in caught.value.detail


def test_silence_and_near_silence_are_quarantined_quiet_music_is_not():
    assert reason_of(wav_bytes(np.zeros(2 * RATE, np.float32))) == audio_lib.SILENT
    hiss = 10 ** (-70 / 20) * np.random.default_rng(4).standard_normal(2 * RATE).astype(np.float32)
    assert reason_of(wav_bytes(hiss, subtype="FLOAT")) == audio_lib.SILENT
    quiet = load(wav_bytes(tone(2.0, amplitude=10 ** (-40 / 20))))  # -43 dBFS: quiet, not silent
    assert math.isclose(levels.level_dbfs(quiet.samples), -43.0, abs_tol=0.1)


def test_non_finite_float_samples_are_quarantined():
    samples = tone(2.0)
    samples[100] = np.nan
    assert reason_of(wav_bytes(samples, subtype="FLOAT")) == audio_lib.NON_FINITE
