"""Raw-audio ops shared by the Transform and serving graphs, in core TF ops (stock TF Serving runs them).

The int16 quantisation is docs/contracts.md's raw-example contract, so a clip cut here gives AudioExampleGen's bytes."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import tensorflow as tf

WAV_HEADER_BYTES = 44  # a mono 16-bit PCM file from tf.audio.encode_wav: RIFF, fmt and data headers
LAST_SEGMENT_MODES = ("drop", "pad")

IntLike = Union[int, tf.Tensor]


def decode_pcm16(audio_bytes: tf.Tensor, num_samples: Optional[int] = None) -> tf.Tensor:
    """String [batch] of int16 LE PCM -> float32 [batch, samples] in [-1, 1); ``num_samples`` pins the static
    length (static feature shapes), and another length fails with INVALID_ARGUMENT."""
    pcm = tf.io.decode_raw(audio_bytes, tf.int16, little_endian=True)
    waveform = tf.cast(pcm, tf.float32) / 32768.0
    if num_samples is not None:
        waveform = tf.reshape(waveform, [-1, num_samples])
    return waveform


def normalise_level(waveform: tf.Tensor, target_dbfs: float, max_gain_db: float) -> tf.Tensor:
    """Scale each row to an RMS level of ``target_dbfs`` (mean removed), so a quieter master gives the same
    features; the gain is capped at ``max_gain_db`` so near-silence stays quiet instead of becoming loud noise."""
    centred = waveform - tf.reduce_mean(waveform, axis=-1, keepdims=True)
    rms = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True))
    target = 10.0 ** (target_dbfs / 20.0)
    floor = target * 10.0 ** (-max_gain_db / 20.0)
    return waveform * (target / tf.maximum(rms, floor))


def segment_count(num_samples: IntLike, segment_samples: int, hop_samples: int, last_segment: str) -> IntLike:
    """How many segments AudioExampleGen cuts from ``num_samples`` samples (see segments.segment_starts): full
    segments every hop, and with "pad" one more a hop later when audio is left that no full segment covers."""
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


def encode_pcm16_segments(waveform: tf.Tensor, segment_samples: int, hop_samples: int, last_segment: str) -> tf.Tensor:
    """One float32 clip [n] -> string [num_segments] of int16 LE PCM, as ExampleGen writes them: the clip is
    quantised once by ``tf.audio.encode_wav`` and cut into byte ranges, so rounding and clipping match training."""
    waveform = tf.reshape(tf.convert_to_tensor(waveform, tf.float32), [-1])
    n = tf.size(waveform, out_type=tf.int64)
    count = segment_count(n, segment_samples, hop_samples, last_segment)
    needed = tf.where(count > 0, (count - 1) * hop_samples + segment_samples, tf.constant(0, tf.int64))
    waveform = tf.pad(waveform, [[0, tf.maximum(needed - n, 0)]])
    wav = tf.audio.encode_wav(waveform[:, tf.newaxis], sample_rate=1)  # the rate only fills the header
    starts = tf.range(count, dtype=tf.int64) * hop_samples
    return tf.strings.substr(wav, WAV_HEADER_BYTES + 2 * starts,
                             tf.fill(tf.shape(starts), tf.constant(2 * segment_samples, tf.int64)))


# Raised-cosine roll-off, in fractions of the lower Nyquist: it follows libsoxr's "HQ" (ExampleGen's resampler).
ROLLOFF = (0.935, 0.985)


def _fft_resample(waveform: tf.Tensor, from_rate: tf.Tensor, to_rate: int) -> tf.Tensor:
    """Band-limited FFT resampling, tapered like ExampleGen's soxr; length ceil(n * to / from), as librosa's."""
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
    """Resample float32 [..., n] from ``from_rate`` (int or scalar tensor) to ``to_rate`` Hz; untouched if equal."""
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    if isinstance(from_rate, int):
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"Sample rates must be positive, got {from_rate} and {to_rate}.")
        return waveform if from_rate == to_rate else _fft_resample(waveform, tf.constant(from_rate), to_rate)
    from_rate = tf.cast(from_rate, tf.int64)
    with tf.control_dependencies([tf.debugging.assert_positive(from_rate, message="sample_rate must be positive")]):
        same = tf.equal(from_rate, to_rate)
    return tf.cond(same, lambda: tf.identity(waveform), lambda: _fft_resample(waveform, from_rate, to_rate))
