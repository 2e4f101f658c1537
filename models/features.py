"""The one spectral front end: log-mel spectrogram and MFCC as TensorFlow graphs.

Transform (models/preprocessing.py), tf.data code and the serving graph all call
:func:`compute`, so training and serving cannot drift apart. The defaults of
``FeatureConfig`` reproduce librosa (``melspectrogram`` + ``power_to_db``, ``mfcc``);
docs/features.md lists every convention and how it was checked.

Only core TF ops (``tf.signal.stft`` and matmuls against constants built with numpy at
trace time): stock TF Serving runs the graph, and no tensorflow-io custom op can enter
it. tensorflow-io's pure-Python ``spectrogram`` / ``melscale`` / ``dbscale`` are not used
here because they cannot match librosa (no centring, fixed Hann window, TF's HTK-style
mel matrix without Slaney norm, one top_db clip over the whole batch) and the magnitude
they return costs a square root that the power spectrum does not need.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np
import scipy.fft
import scipy.signal
import tensorflow as tf

from pipeline.config import FeatureConfig

KINDS = ("log_mel", "mfcc")
LOGS = ("db", "log10_1p")
PAD_MODES = {"constant": "CONSTANT", "reflect": "REFLECT", "symmetric": "SYMMETRIC"}
# Mel filters per block of the block-sparse filterbank product (see _mel_blocks).
MEL_GROUP = 16


# ----- constants built with numpy at trace time (librosa's formulas) -------------------
def hz_to_mel(frequencies: np.ndarray, htk: bool) -> np.ndarray:
    """librosa.hz_to_mel: HTK's 2595 log10(1 + f/700), or Slaney's linear-then-log scale."""
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
                    f / f_sp)


def mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    """librosa.mel_to_hz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float],
                   htk: bool, norm: Optional[str]) -> np.ndarray:
    """librosa.filters.mel as float32 [n_mels, 1 + n_fft // 2]: triangles in Hz between mel-spaced edges.

    norm "slaney" divides each triangle by its width in Hz / 2 (constant energy per band);
    None leaves peaks at 1.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"features.mel_norm must be 'slaney' or None, not {norm!r}.")
    fmax = float(sample_rate) / 2 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=32)
def dct_matrix(n_mels: int, n_mfcc: int, norm: Optional[str]) -> np.ndarray:
    """[n_mels, n_mfcc] float32 with ``x @ D == scipy.fft.dct(x, type=2, norm=norm)[..., :n_mfcc]``."""
    if norm not in ("ortho", None):
        raise ValueError(f"features.dct_norm must be 'ortho' or None, not {norm!r}.")
    if not 0 < n_mfcc <= n_mels:
        raise ValueError(f"features.n_mfcc ({n_mfcc}) must be between 1 and n_mels ({n_mels}).")
    return scipy.fft.dct(np.eye(n_mels), type=2, norm=norm, axis=-1)[:, :n_mfcc].astype(np.float32)


@functools.lru_cache(maxsize=32)
def analysis_window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """librosa's STFT window: periodic (``fftbins=True``), zero-padded to n_fft in the centre."""
    if not 0 < win_length <= n_fft:
        raise ValueError(f"features.win_length ({win_length}) must be between 1 and n_fft ({n_fft}).")
    w = scipy.signal.get_window(window, win_length, fftbins=True)
    left = (n_fft - win_length) // 2
    return np.pad(w, (left, n_fft - win_length - left)).astype(np.float32)


def _check(config: FeatureConfig) -> None:
    if config.kind not in KINDS:
        raise ValueError(f"features.kind must be one of {KINDS}, not {config.kind!r}.")
    if config.log not in LOGS:
        raise ValueError(f"features.log must be one of {LOGS}, not {config.log!r}.")
    if config.center and config.pad_mode not in PAD_MODES:
        raise ValueError(f"features.pad_mode must be one of {tuple(PAD_MODES)}, not {config.pad_mode!r}.")
    if config.power <= 0:
        raise ValueError(f"features.power must be positive, not {config.power}.")


# ----- shapes ----------------------------------------------------------------------------
def num_frames(config: FeatureConfig, num_samples: int) -> int:
    """STFT frames of a signal of ``num_samples`` samples before any crop (librosa's count)."""
    padded = num_samples + 2 * (config.n_fft // 2) if config.center else num_samples
    if padded < config.n_fft:
        raise ValueError(f"{num_samples} samples are too few for one frame of n_fft={config.n_fft}.")
    return 1 + (padded - config.n_fft) // config.hop_length


def output_shape(config: FeatureConfig, segment_samples: int) -> tuple[int, int]:
    """(frames, bins) of :func:`compute` on segments of ``segment_samples`` samples."""
    _check(config)
    frames = num_frames(config, segment_samples)
    if config.frames is not None:
        if config.frames > frames:
            raise ValueError(f"features.frames={config.frames} but a {segment_samples}-sample segment "
                             f"has only {frames} frames.")
        frames = config.frames
    return frames, (config.n_mels if config.kind == "log_mel" else config.n_mfcc)


# ----- graph -----------------------------------------------------------------------------
def _mel_blocks(weights: np.ndarray, interleave: int) -> list[tuple[int, int, np.ndarray]]:
    """Split the [bins, mels] product into blocks of MEL_GROUP filters over the bins they touch.

    A mel filter is non-zero over a few neighbouring bins only; multiplying each group of
    filters by its own bin range does an eighth of the dense product's work (n_fft 2048,
    128 mels). ``interleave`` repeats every bin row (2: real and imaginary parts).
    """
    blocks = []
    for start in range(0, weights.shape[0], MEL_GROUP):
        group = weights[start:start + MEL_GROUP]
        used = np.flatnonzero(group.any(axis=0))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        block = np.repeat(group[:, lo:hi].T, interleave, axis=0)
        blocks.append((lo * interleave, hi * interleave, block))
    return blocks


def _frame_signal(waveform: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """Centre-pad as librosa's ``center=True`` and cut to the samples the kept frames read."""
    if config.center:
        half = config.n_fft // 2
        waveform = tf.pad(waveform, [[0, 0], [half, half]], mode=PAD_MODES[config.pad_mode])
    if config.frames is not None:
        waveform = waveform[:, :(config.frames - 1) * config.hop_length + config.n_fft]
    return waveform


def mel_power(waveform: tf.Tensor, config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """float32 [batch, samples] -> mel spectrogram [batch, frames, n_mels] (|STFT|^power, before the log)."""
    _check(config)
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    static_samples = waveform.shape[-1]
    frames = output_shape(config, static_samples)[0] if static_samples is not None else None
    win = analysis_window(config.window, config.win_length or config.n_fft, config.n_fft)
    stft = tf.signal.stft(_frame_signal(waveform, config), frame_length=config.n_fft,
                          frame_step=config.hop_length, fft_length=config.n_fft, pad_end=False,
                          window_fn=lambda length, dtype: tf.constant(win, dtype=dtype))
    parts = tf.square(tf.bitcast(stft, tf.float32))  # [batch, frames, bins, (re, im)], no copy for the cast
    if config.power == 2.0:
        # |X|^2 = re^2 + im^2, summed by the filterbank product itself over interleaved rows.
        spec = tf.reshape(parts, tf.concat([tf.shape(parts)[:2], [-1]], 0))
        interleave = 2
    else:
        spec = tf.math.pow(tf.reduce_sum(parts, axis=-1), config.power / 2.0)
        interleave = 1
    weights = mel_filterbank(sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax,
                             config.mel_htk, config.mel_norm)
    mel = tf.concat([tf.matmul(spec[..., lo:hi], tf.constant(block))
                     for lo, hi, block in _mel_blocks(weights, interleave)], axis=-1)
    if frames is not None:
        mel = tf.ensure_shape(mel, [None, frames, config.n_mels])
    return mel


def log_compress(mel: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """"db": librosa.power_to_db (ref 1.0) with top_db per example; "log10_1p": log10(1 + scale x)."""
    if config.log == "log10_1p":
        return tf.math.log1p(config.log_scale * mel) * (1.0 / math.log(10.0))
    db = tf.math.log(tf.maximum(mel, config.amin)) * (10.0 / math.log(10.0))
    if config.top_db is not None:
        if config.top_db < 0:
            raise ValueError(f"features.top_db must be non-negative, not {config.top_db}.")
        db = tf.maximum(db, tf.reduce_max(db, axis=[-2, -1], keepdims=True) - config.top_db)
    return db


def log_mel(waveform: tf.Tensor, config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """float32 [batch, samples] -> log-mel [batch, frames, n_mels]."""
    return log_compress(mel_power(waveform, config, sample_rate), config)


def mfcc(waveform: tf.Tensor, config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """float32 [batch, samples] -> MFCC [batch, frames, n_mfcc]: DCT-II of the log-mel over mel bins."""
    dct = dct_matrix(config.n_mels, config.n_mfcc, config.dct_norm)
    return tf.matmul(log_mel(waveform, config, sample_rate), tf.constant(dct))


def compute(waveform: tf.Tensor, feature_config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """The model input: ``feature_config.kind`` of float32 [batch, samples] -> [batch, frames, bins].

    Frames are cropped to ``feature_config.frames`` when it is set (before the per-example
    top_db clip, so a feature depends only on the audio its frames see). A 1-D clip gives
    [frames, bins].
    """
    _check(feature_config)
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    if waveform.shape.rank == 1:
        return compute(waveform[tf.newaxis], feature_config, sample_rate)[0]
    fn = log_mel if feature_config.kind == "log_mel" else mfcc
    return fn(waveform, feature_config, sample_rate)
