"""How a recording can reach the model: level, codec, sample rate, a small device in a room.

Each channel is a pure, seeded function (mono float32 clip, rate) -> (clip as the model would receive it, rate),
so the same call gives the same samples; evaluation/robustness.py sends real clips through them. Codecs use
libsndfile's wheel (MP3 via LAME, Ogg Vorbis), so no system encoder is needed.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

from components.audio_example_gen.views import (  # noqa: F401 - the device channel, shared with training views
    DEVICE_DRR_DB, DEVICE_RT60_SECONDS, DEVICE_SNR_DB, add_noise, as_clip, band_limit, device,
    reverberate, room_impulse_response)

Channel = Callable[[np.ndarray, int], tuple[np.ndarray, int]]

CODEC_RATE = 44100  # the rate, and stereo the layout, of a ripped CD track
MP3_KBPS = 128
# libsndfile's MP3 encoder sets a constant bitrate from compression_level c in [0, 1] as
# 320 - c (320 - 32) kbit/s for MPEG-1 rates (32 kHz and up): 2/3 gives 128 kbit/s.
MP3_COMPRESSION = (320 - MP3_KBPS) / (320 - 32)
# libsndfile's Vorbis quality is 1 - compression_level; 0.6 is its default, libvorbis's
# quality 4 (oggenc -q4, nominally 128 kbit/s for 44.1 kHz stereo, variable).
VORBIS_COMPRESSION = 0.6
CODECS = {"mp3": dict(format="MP3", subtype="MPEG_LAYER_III", compression_level=MP3_COMPRESSION,
                      bitrate_mode="CONSTANT"),
          "vorbis": dict(format="OGG", subtype="VORBIS", compression_level=VORBIS_COMPRESSION)}


def gain(waveform: np.ndarray, sample_rate: int, db: float) -> tuple[np.ndarray, int]:
    """The clip DB decibels louder (negative: quieter); a positive gain clips at full scale."""
    return as_clip(np.asarray(waveform, dtype=np.float64) * 10.0 ** (db / 20.0)), sample_rate


def resample(waveform: np.ndarray, sample_rate: int, target_rate: int) -> tuple[np.ndarray, int]:
    """The clip at TARGET_RATE, resampled as ingestion resamples (soxr, high quality)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if target_rate == sample_rate:
        return waveform, sample_rate
    return as_clip(soxr.resample(waveform, sample_rate, target_rate, quality="HQ")), target_rate


def encode(waveform: np.ndarray, sample_rate: int, codec: str) -> bytes:
    """The clip as a 44.1 kHz stereo file: ``"mp3"`` (128 kbit/s constant) or ``"vorbis"`` (Ogg, quality 4)."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose mp3 or vorbis")
    samples, rate = resample(waveform, sample_rate, CODEC_RATE)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([samples, samples], axis=1), rate, **CODECS[codec])
    return buffer.getvalue()


def codec(waveform: np.ndarray, sample_rate: int, name: str) -> tuple[np.ndarray, int]:
    """The clip through codec NAME (see :func:`encode`) and back, averaged to mono as the client does."""
    samples, rate = sf.read(io.BytesIO(encode(waveform, sample_rate, name)), dtype="float32", always_2d=True)
    return as_clip(samples.mean(axis=1)), int(rate)


GAINS_DB = (-6, -12, -24, 6)


def gain_name(db: int) -> str:
    """A gain channel's name in the tables (and in the answers a benchmark saves)."""
    return f"gain {db:+d} dB" + (" (clipped at full scale)" if db > 0 else "")


def channels(seed: int) -> dict[str, Channel]:
    """The robustness benchmark's channels by table name; SEED draws the device channel's room and noise."""
    named: dict[str, Channel] = {gain_name(db): (lambda w, r, db=db: gain(w, r, db)) for db in GAINS_DB}
    named[f"MP3 {MP3_KBPS} kbit/s, 44.1 kHz stereo"] = lambda w, r: codec(w, r, "mp3")
    named["Ogg Vorbis q4, 44.1 kHz stereo"] = lambda w, r: codec(w, r, "vorbis")
    for rate in (8000, 16000, 44100, 48000):
        named[f"resampled to {rate / 1000:g} kHz"] = lambda w, r, rate=rate: resample(w, r, rate)
    named["device: small speaker to laptop microphone across a room"] = lambda w, r: device(w, r, seed)
    return named
