"""The client's one audio-file reader: any format libsndfile decodes, as mono float32.

The serving graph resamples in-graph, so the file keeps its native sample rate; only the
channels are averaged to mono, as the training data is mono.
"""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from pipeline.config import AUDIO_EXTENSIONS


class AudioFileError(Exception):
    """An audio file is missing or cannot be decoded; the message names the file."""


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Return ``(waveform, sample_rate)``: float32 mono samples in [-1, 1] and the native rate."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioFileError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise AudioFileError(f"not an audio file but a directory: {path}")
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(
            f"cannot decode audio file {path}: {err} "
            f"(supported formats: {', '.join(AUDIO_EXTENSIONS)})") from err
    return samples.mean(axis=1, dtype=np.float32), int(sample_rate)
