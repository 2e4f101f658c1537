"""EfficientAT's evaluation-mode front end in core TF ops (so it fits a serving graph): 32 kHz waveform ->
(batch, 128, frames) log-mel; mn04 expects exactly its training input, so every constant is the recipe's."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

SAMPLE_RATE = 32000
N_FFT = 1024
WIN_LENGTH = 800
HOP_LENGTH = 320
N_MELS = 128
F_MIN = 0.0
F_MAX = 15000.0
PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
NORM_SHIFT = 4.5
NORM_SCALE = 5.0


def _kaldi_mel(freq: np.ndarray) -> np.ndarray:
    """Kaldi's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(freq / 700.0)


def kaldi_mel_basis(f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """The (N_MELS, N_FFT // 2 + 1) triangular filter bank of Kaldi's fbank, without VTLN warping; the Nyquist
    bin gets a zero column, as in the training recipe."""
    nyquist = SAMPLE_RATE / 2.0
    if not 0.0 <= f_min < f_max <= nyquist:
        raise ValueError(f"Mel band edges must satisfy 0 <= f_min < f_max <= {nyquist}: got {f_min}, {f_max}.")
    mel_low, mel_high = _kaldi_mel(np.float64(f_min)), _kaldi_mel(np.float64(f_max))
    step = (mel_high - mel_low) / (N_MELS + 1)
    edges = mel_low + step * np.arange(N_MELS + 2, dtype=np.float64)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bin_mel = _kaldi_mel(np.arange(N_FFT // 2, dtype=np.float64) * (SAMPLE_RATE / N_FFT))[None, :]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(bank, ((0, 0), (0, 1))).astype(np.float32)


def padded_window() -> np.ndarray:
    """The symmetric Hann window of WIN_LENGTH samples, zero-padded on both sides to N_FFT (centred)."""
    hann = np.hanning(WIN_LENGTH)  # symmetric: both ends are 0
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(hann, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Frames the front end gives for ``num_samples`` input samples (1000 for 10 s at 32 kHz)."""
    return 1 + (num_samples - 1) // HOP_LENGTH


def frontend(waveform: tf.Tensor) -> tf.Tensor:
    """(batch, samples) at 32 kHz in [-1, 1] -> (batch, 128, frames); needs at least N_FFT // 2 + 2 samples."""
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    emphasised = waveform[:, 1:] - PREEMPHASIS * waveform[:, :-1]
    half = N_FFT // 2
    padded = tf.pad(emphasised, [[0, 0], [half, half]], mode="REFLECT")
    window = tf.constant(padded_window())
    spectrum = tf.signal.stft(padded, frame_length=N_FFT, frame_step=HOP_LENGTH, fft_length=N_FFT,
                              window_fn=lambda length, dtype: window, pad_end=False)
    power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
    mel = tf.einsum("btf,mf->bmt", power, tf.constant(kaldi_mel_basis()))
    return (tf.math.log(mel + LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE
