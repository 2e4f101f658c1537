"""Raw-audio ops shared by the Transform graph and the serving graph.

Core TensorFlow ops only (stock TF Serving runs them), no Python loops over data. The
int16 quantisation is the raw-example contract of docs/contracts.md: encoding goes
through ``tf.audio.encode_wav`` and decoding divides by 32768 like ``tf.audio.decode_wav``,
so a clip cut here gives the same bytes as AudioExampleGen's
(components/audio_example_gen/segments.py) and the same features downstream.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import tensorflow as tf

WAV_HEADER_BYTES = 44  # a mono 16-bit PCM file from tf.audio.encode_wav: RIFF, fmt and data headers
LAST_SEGMENT_MODES = ("drop", "pad")

IntLike = Union[int, tf.Tensor]


def decode_pcm16(audio_bytes: tf.Tensor, num_samples: Optional[int] = None) -> tf.Tensor:
    """String [batch] of int16 little-endian PCM -> float32 [batch, samples] in [-1, 1).

    ``num_samples`` pins the static length (the segment length), which gives the feature
    graph static shapes; a record of another length then fails with INVALID_ARGUMENT.
    """
    pcm = tf.io.decode_raw(audio_bytes, tf.int16, little_endian=True)
    waveform = tf.cast(pcm, tf.float32) / 32768.0
    if num_samples is not None:
        waveform = tf.reshape(waveform, [-1, num_samples])
    return waveform


def normalise_level(waveform: tf.Tensor, target_dbfs: float, max_gain_db: float) -> tf.Tensor:
    """Scale each row of float32 [batch, samples] to an RMS level of ``target_dbfs`` (mean removed when measuring).

    Why: the same recording mastered 12 dB quieter must give the same features, and every front end
    (log-mel in dB, musicnn's log10(1 + 10000 S), MFCC, summary statistics) reads level otherwise.
    The gain is capped at ``max_gain_db`` so that digital silence and near-silent passages stay
    quiet instead of becoming loud noise; below the cap a gain change of the input cancels exactly.
    """
    centred = waveform - tf.reduce_mean(waveform, axis=-1, keepdims=True)
    rms = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True))
    target = 10.0 ** (target_dbfs / 20.0)
    floor = target * 10.0 ** (-max_gain_db / 20.0)
    return waveform * (target / tf.maximum(rms, floor))


def segment_count(num_samples: IntLike, segment_samples: int, hop_samples: int, last_segment: str) -> IntLike:
    """How many segments AudioExampleGen cuts from ``num_samples`` samples (see segments.segment_starts).

    Full segments every hop; with "pad", one more segment a hop after the last full one
    when audio is left over that no full segment covers.
    """
    if last_segment not in LAST_SEGMENT_MODES:
        raise ValueError(f"audio.last_segment must be 'drop' or 'pad', not {last_segment!r}.")
    if segment_samples <= 0 or hop_samples <= 0:
        raise ValueError(f"segment ({segment_samples}) and hop ({hop_samples}) must be positive sample counts.")
    n = tf.cast(num_samples, tf.int64)
    full = tf.where(n >= segment_samples, (n - segment_samples) // hop_samples + 1, tf.constant(0, tf.int64))
    if last_segment == "drop":
        return full
    following = full * hop_samples
    covered = tf.where(full > 0, (full - 1) * hop_samples + segment_samples, tf.constant(0, tf.int64))
    extra = tf.logical_and(following < n, covered < n)
    return full + tf.cast(extra, tf.int64)


def encode_pcm16_segments(waveform: tf.Tensor, segment_samples: int, hop_samples: int,
                          last_segment: str) -> tf.Tensor:
    """One float32 clip [n] -> string [num_segments] of int16 LE PCM, as ExampleGen writes them.

    The whole (zero-padded where "pad" asks for it) clip is quantised once by
    ``tf.audio.encode_wav`` and the segments are byte ranges of its PCM payload, so the
    rounding and clipping are exactly those of the training examples.
    """
    waveform = tf.reshape(tf.convert_to_tensor(waveform, tf.float32), [-1])
    n = tf.size(waveform, out_type=tf.int64)
    count = segment_count(n, segment_samples, hop_samples, last_segment)
    needed = tf.where(count > 0, (count - 1) * hop_samples + segment_samples, tf.constant(0, tf.int64))
    waveform = tf.pad(waveform, [[0, tf.maximum(needed - n, 0)]])
    wav = tf.audio.encode_wav(waveform[:, tf.newaxis], sample_rate=1)  # the rate only fills the header
    starts = tf.range(count, dtype=tf.int64) * hop_samples
    return tf.strings.substr(wav, WAV_HEADER_BYTES + 2 * starts,
                             tf.fill(tf.shape(starts), tf.constant(2 * segment_samples, tf.int64)))


# Raised-cosine roll-off of the resampler, as fractions of the lower Nyquist frequency:
# libsoxr's "HQ" response (AudioExampleGen's resampler) measured on white noise is flat to
# 0.93, 0.5 at 0.96 and below 0.04 from 0.98 on; this taper follows it within 0.04.
ROLLOFF = (0.935, 0.985)


def _fft_resample(waveform: tf.Tensor, from_rate: tf.Tensor, to_rate: int) -> tf.Tensor:
    """Band-limited resampling of the last axis through the real FFT.

    The spectrum is truncated (or zero-padded) to the new length, which keeps what lies
    below both Nyquist frequencies, and tapered over ROLLOFF like soxr's filter, so a clip
    resampled here is close to one ExampleGen resampled with soxr. Output length
    ceil(n * to / from), as librosa.resample.
    """
    n = tf.shape(waveform, out_type=tf.int64)[-1]
    from_rate = tf.cast(from_rate, tf.int64)
    m = (n * to_rate + from_rate - 1) // from_rate
    spectrum = tf.signal.rfft(waveform, fft_length=tf.cast(n, tf.int32)[tf.newaxis])
    bins_out = m // 2 + 1
    kept = tf.minimum(tf.shape(spectrum, out_type=tf.int64)[-1], bins_out)
    nyquist = tf.cast(tf.minimum(from_rate, to_rate), tf.float64) / 2.0
    freqs = tf.cast(tf.range(kept), tf.float64) * tf.cast(from_rate, tf.float64) / tf.cast(n, tf.float64)
    position = tf.clip_by_value((freqs / nyquist - ROLLOFF[0]) / (ROLLOFF[1] - ROLLOFF[0]), 0.0, 1.0)
    taper = tf.cast(0.5 + 0.5 * tf.cos(np.pi * position), tf.complex64)
    spectrum = spectrum[..., :kept] * taper
    pad = [[0, 0]] * (len(waveform.shape) - 1) + [[0, bins_out - kept]]
    out = tf.signal.irfft(tf.pad(spectrum, pad), fft_length=tf.cast(m, tf.int32)[tf.newaxis])
    return out * tf.cast(m, tf.float32) / tf.cast(n, tf.float32)


def resample(waveform: tf.Tensor, from_rate: IntLike, to_rate: int) -> tf.Tensor:
    """Resample float32 [..., n] from ``from_rate`` (int or scalar tensor) to ``to_rate`` Hz.

    In-graph, for the serving signature's ``sample_rate`` input; returns the input
    untouched when the rates match.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    if isinstance(from_rate, int):
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"Sample rates must be positive, got {from_rate} and {to_rate}.")
        return waveform if from_rate == to_rate else _fft_resample(waveform, tf.constant(from_rate), to_rate)
    from_rate = tf.cast(from_rate, tf.int64)
    checks = [tf.debugging.assert_positive(from_rate, message="sample_rate must be positive")]
    with tf.control_dependencies([c for c in checks if c is not None]):
        same = tf.equal(from_rate, to_rate)
    return tf.cond(same, lambda: tf.identity(waveform), lambda: _fft_resample(waveform, from_rate, to_rate))
