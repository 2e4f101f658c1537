"""The client's one audio-file reader: any format audio/decode.py decodes, as mono float32 at its own rate.

The serving graph resamples, so only the channels are averaged. Ingestion's door checks apply in its order
(filecheck, the header against ``max_seconds`` before any sample, levels), so memory stays bounded.
"""
from __future__ import annotations

import math
import os

import numpy as np

from audio import decode as audio_lib
from audio import filecheck, levels
from config.settings import AUDIO_EXTENSIONS


class AudioFileError(Exception):
    """An audio file is missing or cannot be decoded; the message names the file."""


class AudioTooLongError(AudioFileError):
    """The file is longer than the reader's cap (known from its header, or found while reading)."""

    def __init__(self, message: str, declared_seconds: float | None):
        super().__init__(message)
        self.declared_seconds = declared_seconds  # None: the header understated it


class AudioLevelError(AudioFileError):
    """The samples break levels.py's amplitude or silence rule; ``reason`` is its code."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def read_audio(path: str | os.PathLike, max_seconds: float = math.inf,
               silence_dbfs: float | None = None) -> tuple[np.ndarray, int]:
    """``(waveform, sample_rate)``; AudioTooLongError past ``max_seconds``, AudioFileError otherwise. Given
    ``silence_dbfs``, AudioLevelError where levels.py's rules refuse it (what ingestion quarantines)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise AudioFileError(f"audio file not found: {path}")
    problem = filecheck.check(path)
    if problem is not None:
        what = "a directory" if problem.reason == filecheck.IS_DIRECTORY else problem.detail
        raise AudioFileError(f"not an audio file but {what}: {path}")
    try:
        with open(path, "rb") as f:
            decoded = audio_lib.decode(f, None, max_seconds)
    except audio_lib.BadAudio as err:
        if err.reason == audio_lib.TOO_LONG:
            declared = err.declared_seconds
            length = f"{declared / 60:.1f} min long" if declared is not None else "longer than its header says"
            raise AudioTooLongError(f"audio file {path} is {length}, over the limit of {max_seconds:g} s "
                                    "(serving.max_clip_seconds); nothing was decoded past the limit",
                                    declared) from None
        raise AudioFileError(f"cannot decode audio file {path}: {err.detail} "
                             f"(supported formats: {', '.join(AUDIO_EXTENSIONS)})") from None
    except OSError as err:
        raise AudioFileError(f"cannot read audio file {path}: {err.strerror or err}") from None
    samples = decoded.samples
    waveform = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    problem = None if silence_dbfs is None else levels.check(waveform, silence_dbfs)
    if problem is not None:
        raise AudioLevelError(f"audio file {path} is refused ({problem.reason}): {problem.detail}",
                              problem.reason)
    return waveform, int(decoded.source_rate)

