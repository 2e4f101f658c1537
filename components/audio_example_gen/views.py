"""Device-like copies of train tracks ("views"): band limits, a room and noise, or clipping, seeded per track.

A frozen pretrained body cannot learn to ignore a small speaker and a laptop microphone; its heads can, if they see
such views. A view keeps its track's ``track_id`` (so its split) and offsets ``segment_index`` by VIEW_INDEX_STRIDE.
NumPy and SciPy only: this runs in Beam workers."""
from __future__ import annotations

import zlib
from typing import Callable, Optional

import numpy as np
from scipy import signal

DEVICE_BAND_HZ = (150.0, 7000.0)  # a small speaker's low end, a laptop microphone's top
DEVICE_RT60_SECONDS = 0.3  # a furnished small room
DEVICE_DRR_DB = 3.0  # direct to reverberant energy, a few metres apart
DEVICE_SNR_DB = 30.0
# The ranges a training view draws from (uniform): wider than the benchmark's one channel on both sides.
VIEW_LOW_HZ = (80.0, 300.0)
VIEW_HIGH_HZ = (4000.0, 9000.0)
VIEW_RT60_SECONDS = (0.15, 0.6)
VIEW_DRR_DB = (0.0, 8.0)
VIEW_SNR_DB = (15.0, 40.0)
# How far a clipped view drives the track's peak above full scale (dB): past 12 dB little of the waveform is uncut.
VIEW_CLIP_DRIVE_DB = (1.0, 12.0)
VIEW_INDEX_STRIDE = 10000  # segment_index of a view's segment: its index in the track + view number * this


def as_clip(waveform: np.ndarray) -> np.ndarray:
    """float32 samples limited to [-1, 1], as a 16-bit recording or a decoder's output would be."""
    return np.clip(np.asarray(waveform, dtype=np.float64), -1.0, 1.0).astype(np.float32)


def band_limit(waveform: np.ndarray, sample_rate: int, low_hz: float = DEVICE_BAND_HZ[0],
               high_hz: float = DEVICE_BAND_HZ[1], order: int = 8) -> tuple[np.ndarray, int]:
    """A causal Butterworth band-pass, as a device filters; a high edge near Nyquist leaves only the high-pass."""
    bandpass = high_hz < 0.95 * sample_rate / 2.0
    sos = signal.butter(order, [low_hz, high_hz] if bandpass else low_hz, btype="bandpass" if bandpass else "highpass",
                        fs=sample_rate, output="sos")
    return signal.sosfilt(sos, np.asarray(waveform, dtype=np.float64)).astype(np.float32), sample_rate


def room_impulse_response(sample_rate: int, seed: int, rt60: float = DEVICE_RT60_SECONDS,
                          drr_db: float = DEVICE_DRR_DB) -> np.ndarray:
    """A synthetic room: a unit direct path, then seeded noise decaying by 60 dB over RT60 seconds, scaled so the
    direct path holds DRR_DB more energy than the tail."""
    rng = np.random.default_rng(seed)
    n = max(2, int(round(rt60 * sample_rate)))
    t = np.arange(1, n) / sample_rate
    tail = rng.standard_normal(n - 1) * 10.0 ** (-3.0 * t / rt60)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def reverberate(waveform: np.ndarray, sample_rate: int, seed: int, rt60: float = DEVICE_RT60_SECONDS,
                drr_db: float = DEVICE_DRR_DB) -> tuple[np.ndarray, int]:
    """The clip played in the room of :func:`room_impulse_response`, cut to its own length."""
    x = np.asarray(waveform, dtype=np.float64)
    wet = signal.fftconvolve(x, room_impulse_response(sample_rate, seed, rt60, drr_db))[: x.size]
    return wet.astype(np.float32), sample_rate


def add_noise(waveform: np.ndarray, sample_rate: int, snr_db: float, seed: int,
              band_hz: Optional[tuple[float, float]] = None) -> tuple[np.ndarray, int]:
    """Seeded Gaussian noise (band-limited to BAND_HZ if given) at exactly SNR_DB below the clip's power."""
    x = np.asarray(waveform, dtype=np.float64)
    noise = np.random.default_rng(seed).standard_normal(x.size)
    if band_hz is not None:
        noise = band_limit(noise, sample_rate, *band_hz)[0].astype(np.float64)
    noise *= np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2) * 10.0 ** (-snr_db / 10.0))
    return (x + noise).astype(np.float32), sample_rate


def device(waveform: np.ndarray, sample_rate: int, seed: int, snr_db: Optional[float] = DEVICE_SNR_DB,
           band_hz: tuple[float, float] = DEVICE_BAND_HZ, rt60: float = DEVICE_RT60_SECONDS,
           drr_db: float = DEVICE_DRR_DB) -> tuple[np.ndarray, int]:
    """A small speaker played to a laptop microphone across a room (SNR_DB None: no noise), limited to full scale."""
    x, rate = band_limit(waveform, sample_rate, *band_hz)
    x, rate = reverberate(x, rate, seed, rt60, drr_db)
    if snr_db is not None:
        x, rate = add_noise(x, rate, snr_db, seed + 1, band_hz=band_hz)
    return as_clip(x), rate


def device_view(waveform: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """:func:`device` with its band, room and noise drawn from the VIEW_* ranges by SEED."""
    rng = np.random.default_rng(seed)
    band = (float(rng.uniform(*VIEW_LOW_HZ)), float(rng.uniform(*VIEW_HIGH_HZ)))
    rt60, drr = float(rng.uniform(*VIEW_RT60_SECONDS)), float(rng.uniform(*VIEW_DRR_DB))
    return device(waveform, sample_rate, seed + 1, float(rng.uniform(*VIEW_SNR_DB)), band, rt60, drr)[0]


def clipped_view(waveform: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """The track's peak driven VIEW_CLIP_DRIVE_DB (drawn by SEED) above full scale and cut there: hard clipping adds
    harmonics no gain or band limit shows a model, and too-loud recordings are common. SAMPLE_RATE is unused."""
    x = np.asarray(waveform, dtype=np.float64)
    peak = float(np.max(np.abs(x), initial=0.0))
    if peak == 0.0:
        return as_clip(x)
    drive_db = float(np.random.default_rng(seed).uniform(*VIEW_CLIP_DRIVE_DB))
    return as_clip(x * (10.0 ** (drive_db / 20.0) / peak))


VIEWS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {"device": device_view, "clipped": clipped_view}


def view_seed(track_id: str, view: str, number: int) -> int:
    """A seed that depends on the track, the view's name and its position only (stable across runs)."""
    return zlib.crc32(f"{track_id}/{view}/{number}".encode()) & 0x7FFFFFFF
