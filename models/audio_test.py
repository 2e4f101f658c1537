"""models/audio.py against tf.audio, AudioExampleGen's own cutter, scipy and librosa."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import tensorflow as tf

from components.audio_example_gen import segments
from models import audio
from tests.testkit.graph_ops import assert_core_ops_only
from synthetic.generator import render_track

# Values at the quantiser's edges: full scale, beyond it, and exact half steps.
EDGES = np.array([0.0, 1.0, -1.0, 1.5, -1.5, 0.999999, -0.999999, 0.5 / 32768, -0.5 / 32768,
                  1.5 / 32768, -1.5 / 32768, 2.5 / 32768, 1e-9], np.float32)


def test_decode_pcm16_matches_tf_audio_decode_wav():
    x = np.concatenate([EDGES, np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)])
    wav = tf.audio.encode_wav(tf.constant(x)[:, None], 22050)
    reference = tf.audio.decode_wav(wav)[0][:, 0].numpy()
    pcm = wav.numpy()[audio.WAV_HEADER_BYTES:]
    got = audio.decode_pcm16(tf.constant([pcm, pcm]), num_samples=len(x)).numpy()
    assert got.shape == (2, len(x)) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0], reference)
    np.testing.assert_array_equal(got[1], reference)


@pytest.mark.parametrize("n,segment,hop,mode", [
    (1000, 300, 300, "drop"), (1000, 300, 300, "pad"), (900, 300, 300, "pad"), (250, 300, 300, "pad"),
    (1000, 300, 100, "drop"), (1000, 300, 100, "pad"), (1000, 300, 450, "pad"), (250, 300, 300, "drop"),
])
def test_segments_are_exampleGen_bytes(n, segment, hop, mode):
    x = np.random.default_rng(n + hop).uniform(-1.2, 1.2, n).astype(np.float32)
    x[: len(EDGES)] = EDGES
    got = audio.encode_pcm16_segments(tf.constant(x), segment, hop, mode).numpy()
    expected = [p.astype("<i2").tobytes() for p in segments.cut(x, segment, hop, mode)]
    assert list(got) == expected
    assert int(audio.segment_count(n, segment, hop, mode)) == len(expected)


def test_segments_in_a_graph_with_unknown_length():
    fn = tf.function(lambda w: audio.encode_pcm16_segments(w, 300, 300, "pad"),
                     input_signature=[tf.TensorSpec([None], tf.float32)])
    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    assert list(fn(x).numpy()) == [p.astype("<i2").tobytes() for p in segments.cut(x, 300, 300, "pad")]
    assert_core_ops_only(fn.get_concrete_function())


@pytest.mark.parametrize("genre", ["metal", "jazz"])  # metal: the most energy near Nyquist
@pytest.mark.parametrize("from_rate,to_rate", [(44100, 22050), (16000, 22050), (22050, 16000), (48000, 16000)])
def test_resample_is_close_to_librosa_soxr_hq(genre, from_rate, to_rate):
    clip = render_track(genre, 3, seconds=2.0, sample_rate=from_rate, seed=0)
    fn = tf.function(lambda w, r: audio.resample(w, r, to_rate),
                     input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)])
    ours = fn(clip, from_rate).numpy()
    assert ours.shape == (int(np.ceil(len(clip) * to_rate / from_rate)),)
    ref = librosa.resample(clip, orig_sr=from_rate, target_sr=to_rate, res_type="soxr_hq")
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - ours) ** 2))
    assert snr > 30, f"SNR {snr:.1f} dB against librosa soxr_hq"
    assert_core_ops_only(fn.get_concrete_function())


def test_resample_keeps_the_passband():
    """A tone well below Nyquist comes out as the same tone at the new rate."""
    t_in, t_out = np.arange(44100) / 44100, np.arange(22050) / 22050
    tone = lambda t: 0.5 * np.sin(2 * np.pi * 1234.5 * t + 0.3)  # noqa: E731 - not a whole number of periods
    ours = audio.resample(tf.constant(tone(t_in), tf.float32), 44100, 22050).numpy()
    middle = slice(2205, -2205)  # the FFT method rings at the clip's ends only
    np.testing.assert_allclose(ours[middle], tone(t_out)[middle], atol=2e-3)


def test_resample_is_identity_for_equal_rates():
    x = np.random.default_rng(1).standard_normal(1001).astype(np.float32)
    assert audio.resample(tf.constant(x), 22050, 22050).numpy().tobytes() == x.tobytes()
    fn = tf.function(lambda w, r: audio.resample(w, r, 22050))
    assert fn(tf.constant(x), tf.constant(22050)).numpy().tobytes() == x.tobytes()


def _dbfs(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    return 10 * np.log10(np.mean(centred.astype(np.float64) ** 2, axis=-1))


def test_normalise_level_brings_every_row_to_the_target_and_cancels_a_gain():
    clip = render_track("jazz", 0, seconds=1.0, sample_rate=8000, seed=3)
    rows = np.stack([clip * 10 ** (db / 20) for db in (-24.0, -12.0, 0.0, 6.0)]).astype(np.float32)
    out = audio.normalise_level(tf.constant(rows), target_dbfs=-18.0, max_gain_db=70.0).numpy()
    np.testing.assert_allclose(_dbfs(out), -18.0, atol=1e-3)
    for row in out[1:]:
        np.testing.assert_allclose(row, out[0], rtol=0, atol=1e-5)


def test_normalise_level_caps_the_gain_so_silence_and_hiss_stay_quiet():
    rng = np.random.default_rng(0)
    hiss = (1e-6 * rng.standard_normal(4000)).astype(np.float32)  # -120 dBFS
    rows = tf.constant(np.stack([np.zeros(4000, np.float32), hiss]))
    out = audio.normalise_level(rows, target_dbfs=-18.0, max_gain_db=40.0).numpy()
    assert not out[0].any()  # digital silence stays silence (no division by zero)
    np.testing.assert_allclose(_dbfs(out[1:])[0], _dbfs(hiss) + 40.0, atol=1e-3)  # raised by the cap, no more
