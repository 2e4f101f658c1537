"""How a recording can reach the model: level, codec, sample rate, a small device in a room.

Each channel is a pure function of a float32 mono clip in [-1, 1] and its sample rate that
returns the clip as the model would then receive it, and its new rate. Nothing is read or
written outside the call and every random draw comes from a seed, so the same call gives
the same samples. ``bench/robustness.py`` sends each real clip through them to measure
which answers change; ``tests/test_bench_channels.py`` checks each one's properties.

Codecs use libsndfile (``soundfile``): its wheel encodes MP3 (LAME) and Ogg Vorbis and
decodes both, so no system encoder is needed. As the client does (serving/audio_file.py),
a decoded stereo file is averaged to mono.
"""
from __future__ import annotations

import io
from typing import Callable, Optional

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

Channel = Callable[[np.ndarray, int], tuple[np.ndarray, int]]

CODEC_RATE = 44100  # the rate, and stereo the layout, of a ripped CD track
MP3_KBPS = 128
# libsndfile's MP3 encoder sets a constant bitrate from compression_level c in [0, 1] as
# 320 - c (320 - 32) kbit/s for MPEG-1 rates (32 kHz and up): 2/3 gives 128 kbit/s.
MP3_COMPRESSION = (320 - MP3_KBPS) / (320 - 32)
# libsndfile's Vorbis quality is 1 - compression_level; 0.6 is its default, libvorbis's
# quality 4 (oggenc -q4, nominally 128 kbit/s for 44.1 kHz stereo, variable).
VORBIS_COMPRESSION = 0.6
DEVICE_BAND_HZ = (150.0, 7000.0)  # a small speaker's low end, a laptop microphone's top
DEVICE_RT60_SECONDS = 0.3  # a furnished small room
DEVICE_DRR_DB = 3.0  # direct to reverberant energy, a few metres apart
DEVICE_SNR_DB = 30.0


def as_clip(waveform: np.ndarray) -> np.ndarray:
    """float32 samples limited to [-1, 1], as a 16-bit recording or a decoder's output would be."""
    return np.clip(np.asarray(waveform, dtype=np.float64), -1.0, 1.0).astype(np.float32)


def gain(waveform: np.ndarray, sample_rate: int, db: float) -> tuple[np.ndarray, int]:
    """The clip DB decibels louder (negative: quieter); a positive gain clips at full scale."""
    return as_clip(np.asarray(waveform, dtype=np.float64) * 10.0 ** (db / 20.0)), sample_rate


def resample(waveform: np.ndarray, sample_rate: int, target_rate: int) -> tuple[np.ndarray, int]:
    """The clip at TARGET_RATE, resampled as ingestion resamples (soxr, high quality)."""
    if target_rate == sample_rate:
        return np.asarray(waveform, dtype=np.float32), sample_rate
    return as_clip(soxr.resample(np.asarray(waveform, dtype=np.float32), sample_rate, target_rate, quality="HQ")), \
        target_rate


def encode(waveform: np.ndarray, sample_rate: int, codec: str) -> bytes:
    """The clip as a 44.1 kHz stereo file: ``"mp3"`` (128 kbit/s constant) or ``"vorbis"`` (Ogg, quality 4)."""
    samples, rate = resample(waveform, sample_rate, CODEC_RATE)
    stereo = np.stack([samples, samples], axis=1)
    buffer = io.BytesIO()
    if codec == "mp3":
        sf.write(buffer, stereo, rate, format="MP3", subtype="MPEG_LAYER_III", compression_level=MP3_COMPRESSION,
                 bitrate_mode="CONSTANT")
    elif codec == "vorbis":
        sf.write(buffer, stereo, rate, format="OGG", subtype="VORBIS", compression_level=VORBIS_COMPRESSION)
    else:
        raise ValueError(f"unknown codec {codec!r}; choose mp3 or vorbis")
    return buffer.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """A compressed file's samples, averaged to mono as the client averages them."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return as_clip(samples.mean(axis=1)), int(rate)


def codec(waveform: np.ndarray, sample_rate: int, name: str) -> tuple[np.ndarray, int]:
    """The clip encoded with codec NAME (see :func:`encode`) and decoded again."""
    return decode(encode(waveform, sample_rate, name))


def band_limit(waveform: np.ndarray, sample_rate: int, low_hz: float = DEVICE_BAND_HZ[0],
               high_hz: float = DEVICE_BAND_HZ[1], order: int = 8) -> tuple[np.ndarray, int]:
    """A causal Butterworth band-pass (48 dB an octave outside the band at order 8), as a device
    filters: no energy below a small speaker's range or above a cheap microphone's. Above the
    Nyquist frequency there is nothing to remove, so only the low edge applies there."""
    nyquist = sample_rate / 2.0
    if high_hz < 0.95 * nyquist:
        sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    else:
        sos = signal.butter(order, low_hz, btype="highpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, np.asarray(waveform, dtype=np.float64)).astype(np.float32), sample_rate


def room_impulse_response(sample_rate: int, seed: int, rt60: float = DEVICE_RT60_SECONDS,
                          drr_db: float = DEVICE_DRR_DB) -> np.ndarray:
    """A synthetic room: a unit direct path, then seeded noise decaying by 60 dB over RT60 seconds,
    scaled so the direct path holds DRR_DB more energy than the tail."""
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


def device(waveform: np.ndarray, sample_rate: int, seed: int, snr_db: Optional[float] = DEVICE_SNR_DB
           ) -> tuple[np.ndarray, int]:
    """A small speaker played to a laptop microphone across a room: band limits, reverberation,
    then background noise in the same band at SNR_DB (None: no noise), limited to full scale."""
    x, rate = band_limit(waveform, sample_rate)
    x, rate = reverberate(x, rate, seed)
    if snr_db is not None:
        x, rate = add_noise(x, rate, snr_db, seed + 1, band_hz=DEVICE_BAND_HZ)
    return as_clip(x), rate


def channels(seed: int) -> dict[str, Channel]:
    """The channels the robustness benchmark applies, by the name its tables show; SEED draws the
    device channel's room and noise (the benchmark gives each clip its own)."""
    named: dict[str, Channel] = {f"gain {db:+d} dB" + (" (clipped at full scale)" if db > 0 else ""):
                                 (lambda w, r, db=db: gain(w, r, db)) for db in (-6, -12, -24, 6)}
    named[f"MP3 {MP3_KBPS} kbit/s, 44.1 kHz stereo"] = lambda w, r: codec(w, r, "mp3")
    named["Ogg Vorbis q4, 44.1 kHz stereo"] = lambda w, r: codec(w, r, "vorbis")
    for rate in (8000, 16000, 44100, 48000):
        named[f"resampled to {rate / 1000:g} kHz"] = lambda w, r, rate=rate: resample(w, r, rate)
    named["device: small speaker to laptop microphone across a room"] = lambda w, r: device(w, r, seed)
    return named
