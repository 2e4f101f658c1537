"""The one spectral front end: log-mel, MFCC and per-segment summary statistics as TensorFlow graphs.

Transform and the serving graph both call :func:`compute`, so they cannot drift; the defaults reproduce librosa
(docs/features.md), in core TF ops only so stock TF Serving runs them."""
from __future__ import annotations

import functools
import math
from typing import Mapping, Optional, TypeVar, Union

import numpy as np
import scipy.fft
import scipy.signal
import tensorflow as tf

from config.settings import FeatureConfig
from models import audio
from models.efficientat import log_mel as efficientat_front_end

T = TypeVar("T")
KINDS = ("log_mel", "mfcc", "summary", "kaldi_log_mel")
# EfficientAT's mn04 front end: fixed settings at 32 kHz and its own scaling, left as it is (see is_zscored).
KALDI_LOG_MEL = "kaldi_log_mel"
FIXED_KINDS = (KALDI_LOG_MEL,)  # kinds no FeatureConfig setting applies to: the only ones features.extra_kinds takes
LOGS = ("db", "log10_1p")
PAD_MODES = {"constant": "CONSTANT", "reflect": "REFLECT", "symmetric": "SYMMETRIC"}
# Mel filters per block of the block-sparse filterbank product (see _mel_blocks).
MEL_GROUP = 16
# The "summary" kind (the ANN's input): librosa's defaults for what FeatureConfig does not set.
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")  # chroma_stft, base_c
ROLL_PERCENT = 0.85  # spectral_rolloff
ZCR_THRESHOLD = 1e-10  # zero_crossings: |y| <= this counts as 0 (positive)
SCALAR_DESCRIPTORS = ("spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "zero_crossing_rate", "rms")
# Slaney's mel scale (librosa's default, htk=False): linear below MIN_LOG_HZ, logarithmic above.
F_SP, MIN_LOG_HZ, LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
MIN_LOG_MEL = MIN_LOG_HZ / F_SP
# Below this a spectrum column is left unnormalised, as librosa.util.normalize does (float32 tiny).
TINY = float(np.finfo(np.float32).tiny)


# ----- constants built with numpy at trace time (librosa's formulas) -------------------
def hz_to_mel(frequencies: np.ndarray, htk: bool) -> np.ndarray:
    """librosa.hz_to_mel: HTK's 2595 log10(1 + f/700), or Slaney's linear-then-log scale."""
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    return np.where(f >= MIN_LOG_HZ, MIN_LOG_MEL + np.log(np.maximum(f, MIN_LOG_HZ) / MIN_LOG_HZ) / LOGSTEP, f / F_SP)


def mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    """librosa.mel_to_hz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m >= MIN_LOG_MEL, MIN_LOG_HZ * np.exp(LOGSTEP * (m - MIN_LOG_MEL)), F_SP * m)


@functools.lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float],
                   htk: bool, norm: Optional[str]) -> np.ndarray:
    """librosa.filters.mel as float32 [n_mels, 1 + n_fft // 2]; norm "slaney" gives constant energy per band."""
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
def chroma_filterbank(sample_rate: int, n_fft: int, tuning: float = 0.0) -> np.ndarray:
    """librosa.filters.chroma (12 bins, ctroct 5, octwidth 2, L2 norm, base C) as float32 [12, 1 + n_fft // 2]."""
    n_chroma = len(PITCH_CLASSES)
    frequencies = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (a440 / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))  # the 0 Hz bin: 1.5 octaves below bin 1
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    wts /= np.sqrt(np.sum(wts ** 2, axis=0, keepdims=True))
    wts *= np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2.0) ** 2))[np.newaxis, :]
    wts = np.roll(wts, -3, axis=0)
    return np.ascontiguousarray(wts[:, : 1 + n_fft // 2], dtype=np.float32)


@functools.lru_cache(maxsize=32)
def analysis_window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """librosa's STFT window: periodic (``fftbins=True``), zero-padded to n_fft in the centre."""
    if not 0 < win_length <= n_fft:
        raise ValueError(f"features.win_length ({win_length}) must be between 1 and n_fft ({n_fft}).")
    w = scipy.signal.get_window(window, win_length, fftbins=True)
    left = (n_fft - win_length) // 2
    return np.pad(w, (left, n_fft - win_length - left)).astype(np.float32)


def _check(config: FeatureConfig) -> None:
    pad_modes = tuple(PAD_MODES) if config.center else ()  # without centring nothing is padded
    for name, allowed in (("kind", KINDS), ("log", LOGS), ("pad_mode", pad_modes)):
        if allowed and getattr(config, name) not in allowed:
            raise ValueError(f"features.{name} must be one of {allowed}, not {getattr(config, name)!r}.")
    if config.power <= 0:
        raise ValueError(f"features.power must be positive, not {config.power}.")
    if config.kind == KALDI_LOG_MEL and config.frames is not None:
        raise ValueError("features.kind 'kaldi_log_mel' keeps every frame of the segment: features.frames must be "
                         f"None, not {config.frames}.")
    if config.band_limit_hz is not None and config.band_limit_hz <= 0:
        raise ValueError(f"features.band_limit_hz must be a positive frequency or None, not {config.band_limit_hz}.")
    for extra in config.extra_kinds:
        if extra not in FIXED_KINDS or extra == config.kind:
            raise ValueError(f"features.extra_kinds may name {FIXED_KINDS} (front ends with fixed settings), each "
                             f"other than features.kind {config.kind!r}; not {extra!r}.")
    if config.sample_rate is not None and config.kind in FIXED_KINDS:
        raise ValueError(f"features.kind {config.kind!r} runs at its own fixed rate: features.sample_rate must be "
                         f"None, not {config.sample_rate}.")
    if config.kind == "summary" and (config.frames is not None or config.power != 2.0):
        raise ValueError("features.kind 'summary' summarises every frame of the power spectrum: it needs "
                         f"features.frames None and features.power 2, not {config.frames} and {config.power}.")


# ----- shapes ----------------------------------------------------------------------------
def num_frames(config: FeatureConfig, num_samples: int) -> int:
    """STFT frames of a signal of ``num_samples`` samples before any crop (librosa's count)."""
    padded = num_samples + 2 * (config.n_fft // 2) if config.center else num_samples
    if padded < config.n_fft:
        raise ValueError(f"{num_samples} samples are too few for one frame of n_fft={config.n_fft}.")
    return 1 + (padded - config.n_fft) // config.hop_length


def model_inputs(config: FeatureConfig) -> tuple[str, ...]:
    """The kinds Transform emits for the model, ``kind`` first: what the model's inputs are named."""
    return (config.kind, *config.extra_kinds)


def as_model_input(tensors: Mapping[str, T], config: FeatureConfig) -> Union[T, dict[str, T]]:
    """What the model is called on: the one input itself, or a dict by kind when ``extra_kinds`` adds inputs."""
    if not config.extra_kinds:
        return tensors[config.kind]
    return {kind: tensors[kind] for kind in model_inputs(config)}


def output_shapes(config: FeatureConfig, segment_samples: int, sample_rate: int) -> dict[str, tuple[int, int]]:
    """(frames, bins) of each model input (:func:`model_inputs`) for segments of ``segment_samples`` samples;
    ``kind`` sees them resampled to ``features.sample_rate`` when set (audio.resample's ceil(n * to / from))."""
    resampled = -(-segment_samples * (config.sample_rate or sample_rate) // sample_rate)
    return {config.kind: output_shape(config, resampled),  # extra kinds are fixed: nothing else applies to them
            **{extra: output_shape(FeatureConfig(kind=extra), segment_samples) for extra in config.extra_kinds}}


def output_shape(config: FeatureConfig, segment_samples: int) -> tuple[int, int]:
    """(frames, bins) of ``kind`` on segments of ``segment_samples`` samples at the front end's rate."""
    _check(config)
    if config.kind == KALDI_LOG_MEL:
        return efficientat_front_end.num_frames(segment_samples), efficientat_front_end.N_MELS
    frames = num_frames(config, segment_samples)
    if config.kind == "summary":
        return 1, len(summary_names(config))
    if config.frames is not None:
        if config.frames > frames:
            raise ValueError(f"features.frames={config.frames} but a {segment_samples}-sample segment "
                             f"has only {frames} frames.")
        frames = config.frames
    return frames, (config.n_mels if config.kind == "log_mel" else config.n_mfcc)


# ----- graph -----------------------------------------------------------------------------
def _mel_blocks(weights: np.ndarray, interleave: int) -> list[tuple[int, int, np.ndarray]]:
    """Split the [bins, mels] product into blocks of MEL_GROUP filters over the few bins they touch, a fraction of
    the dense product's work. ``interleave`` repeats every bin row (2: real and imaginary parts)."""
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


def _squared_stft_parts(waveform: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """[batch, frames, bins, 2]: re^2 and im^2 of librosa's STFT (bitcast, so no copy for the cast)."""
    win = analysis_window(config.window, config.win_length or config.n_fft, config.n_fft)
    stft = tf.signal.stft(_frame_signal(waveform, config), frame_length=config.n_fft,
                          frame_step=config.hop_length, fft_length=config.n_fft, pad_end=False,
                          window_fn=lambda length, dtype: tf.constant(win, dtype=dtype))
    return tf.square(tf.bitcast(stft, tf.float32))


def _mel_product(spec: tf.Tensor, config: FeatureConfig, sample_rate: int, interleave: int) -> tf.Tensor:
    """[batch, frames, bins * interleave] spectrum -> [batch, frames, n_mels] (block-sparse filterbank)."""
    weights = mel_filterbank(sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax,
                             config.mel_htk, config.mel_norm)
    return tf.concat([tf.matmul(spec[..., lo:hi], tf.constant(block))
                      for lo, hi, block in _mel_blocks(weights, interleave)], axis=-1)


def mel_power(waveform: tf.Tensor, config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """float32 [batch, samples] -> mel spectrogram [batch, frames, n_mels] (|STFT|^power, before the log)."""
    _check(config)
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    static_samples = waveform.shape[-1]
    frames = output_shape(config, static_samples)[0] if static_samples is not None else None
    parts = _squared_stft_parts(waveform, config)
    if config.power == 2.0:
        # |X|^2 = re^2 + im^2, summed by the filterbank product itself over interleaved rows.
        spec = tf.reshape(parts, tf.concat([tf.shape(parts)[:2], [-1]], 0))
        interleave = 2
    else:
        spec = tf.math.pow(tf.reduce_sum(parts, axis=-1), config.power / 2.0)
        interleave = 1
    mel = _mel_product(spec, config, sample_rate, interleave)
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


def cepstrum(mel: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """Mel spectrogram [..., n_mels] (before the log) -> MFCC [..., n_mfcc]: DCT-II of the log-mel over mel bins."""
    dct = dct_matrix(config.n_mels, config.n_mfcc, config.dct_norm)
    return tf.matmul(log_compress(mel, config), tf.constant(dct))


def compute(waveform: tf.Tensor, feature_config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """The model input: ``feature_config.kind`` of float32 [batch, samples] (or one clip) -> [batch, frames, bins];
    frames are cropped before the per-example top_db clip, so a feature depends only on the audio its frames see."""
    _check(feature_config)
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    if waveform.shape.rank == 1:
        return compute(waveform[tf.newaxis], feature_config, sample_rate)[0]
    if feature_config.sample_rate is not None and feature_config.sample_rate != sample_rate:
        waveform = audio.resample(waveform, sample_rate, feature_config.sample_rate)
        sample_rate = feature_config.sample_rate
    fn = {"log_mel": log_mel, "mfcc": lambda w, c, rate: cepstrum(mel_power(w, c, rate), c), "summary": summary,
          KALDI_LOG_MEL: kaldi_log_mel}[feature_config.kind]
    return fn(waveform, feature_config, sample_rate)


def compute_inputs(waveform: tf.Tensor, feature_config: FeatureConfig, sample_rate: int) -> dict[str, tf.Tensor]:
    """Every model input (:func:`model_inputs`) of float32 [batch, samples], band-limited to ``band_limit_hz``."""
    _check(feature_config)
    if feature_config.band_limit_hz is not None and 2 * feature_config.band_limit_hz < sample_rate:
        limited_rate = 2 * feature_config.band_limit_hz
        limited = audio.resample(audio.resample(waveform, sample_rate, limited_rate), limited_rate, sample_rate)
        waveform = tf.ensure_shape(limited[..., :tf.shape(waveform)[-1]], waveform.shape)  # the way back rounds up
    return {kind: compute(waveform, feature_config if kind == feature_config.kind else FeatureConfig(kind=kind),
                          sample_rate) for kind in model_inputs(feature_config)}


def is_zscored(kind: str) -> bool:
    """Whether Transform z-scores this kind per bin: not the Kaldi log-mel, whose fixed scaling mn04 was trained on."""
    return kind != KALDI_LOG_MEL


def kaldi_log_mel(waveform: tf.Tensor, config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """float32 [batch, samples] at 32 kHz -> EfficientAT's log-mel as [batch, frames, 128]; ``config`` is unused."""
    del config
    if sample_rate != efficientat_front_end.SAMPLE_RATE:
        raise ValueError(f"features.kind 'kaldi_log_mel' is mn04's front end at {efficientat_front_end.SAMPLE_RATE} "
                         f"Hz, not {sample_rate} Hz: use PipelineConfig().with_model('efficientat') audio settings.")
    return tf.transpose(efficientat_front_end.frontend(waveform), [0, 2, 1])


# ----- per-segment summary statistics (the "summary" kind) ---------------------------------
def summary_names(config: FeatureConfig) -> list[str]:
    """Names of the "summary" statistics in output order: every per-frame descriptor's mean, then its variance."""
    per_frame = ([f"mfcc{k}" for k in range(1, config.n_mfcc + 1)] + [f"chroma_{p}" for p in PITCH_CLASSES]
                 + list(SCALAR_DESCRIPTORS))
    return [f"{name}_mean" for name in per_frame] + [f"{name}_var" for name in per_frame]


def _unit_sum(values: tf.Tensor, reduce) -> tf.Tensor:
    """librosa.util.normalize along the last axis: divide by ``reduce`` (sum or max) unless it is below TINY."""
    length = reduce(values, axis=-1, keepdims=True)
    return values / tf.where(length < TINY, tf.ones_like(length), length)


def zero_crossing_rate(waveform: tf.Tensor, config: FeatureConfig) -> tf.Tensor:
    """librosa.feature.zero_crossing_rate with frame_length n_fft: [batch, frames], edge-padded as librosa does;
    counted from a running sum of sign changes, so no [frames, n_fft] tensor is built."""
    length, hop = config.n_fft, config.hop_length
    if config.center:
        half = length // 2
        waveform = tf.concat([tf.repeat(waveform[:, :1], half, axis=1), waveform,
                              tf.repeat(waveform[:, -1:], half, axis=1)], axis=1)
    negative = waveform < -ZCR_THRESHOLD
    changes = tf.cast(tf.not_equal(negative[:, 1:], negative[:, :-1]), tf.int32)
    running = tf.pad(tf.cumsum(changes, axis=1), [[0, 0], [1, 0]])
    starts = tf.range(0, tf.shape(waveform)[1] - length + 1, hop)
    counts = tf.gather(running, starts + length - 1, axis=1) - tf.gather(running, starts, axis=1)
    return tf.cast(counts, tf.float32) / float(length)


def frame_descriptors(waveform: tf.Tensor, config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """float32 [batch, samples] -> [batch, frames, n_mfcc + 12 + 5]: MFCC, chroma (tuning 0, where librosa estimates
    it; docs/features.md), spectral centroid, bandwidth and roll-off from one STFT, zero-crossing rate and RMS."""
    power = tf.reduce_sum(_squared_stft_parts(waveform, config), axis=-1)  # |X|^2 [batch, frames, bins]
    mfccs = cepstrum(_mel_product(power, config, sample_rate, 1), config)
    chroma = _unit_sum(tf.matmul(power, tf.constant(chroma_filterbank(sample_rate, config.n_fft).T)), tf.reduce_max)
    freqs = tf.constant(np.fft.rfftfreq(config.n_fft, d=1.0 / sample_rate), tf.float32)
    magnitude = tf.sqrt(power)
    weights = _unit_sum(magnitude, tf.reduce_sum)
    centroid = tf.reduce_sum(weights * freqs, axis=-1)
    bandwidth = tf.sqrt(tf.reduce_sum(weights * tf.square(freqs - centroid[..., tf.newaxis]), axis=-1))
    energy = tf.cumsum(magnitude, axis=-1)
    reached = tf.cast(energy >= ROLL_PERCENT * energy[..., -1:], tf.int32)
    rolloff = tf.gather(freqs, tf.argmax(reached, axis=-1, output_type=tf.int32))
    # librosa.feature.rms with frame_length n_fft and the STFT's centring and pad mode.
    frames = tf.signal.frame(_frame_signal(waveform, config), config.n_fft, config.hop_length, axis=-1)
    rms = tf.sqrt(tf.reduce_mean(tf.square(frames), axis=-1))
    scalars = [centroid, bandwidth, rolloff, zero_crossing_rate(waveform, config), rms]
    return tf.concat([mfccs, chroma, tf.stack(scalars, axis=-1)], axis=-1)


def summary(waveform: tf.Tensor, config: FeatureConfig, sample_rate: int) -> tf.Tensor:
    """float32 [batch, samples] -> [batch, 1, statistics]: mean and variance over frames (names: summary_names),
    one row so the statistics keep the shared [frames, bins] layout (docs/contracts.md)."""
    descriptors = frame_descriptors(waveform, config, sample_rate)
    stats = tf.concat([tf.reduce_mean(descriptors, axis=1), tf.math.reduce_variance(descriptors, axis=1)], axis=-1)
    return stats[:, tf.newaxis, :]
