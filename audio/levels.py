"""The one amplitude rule and the one silence rule of ingestion, the tagger, the client and the page.

Amplitude: samples are float in [-1, 1] (int16 PCM divided by 32768). A peak up to
:data:`MAX_PEAK` is clipped to [-1, 1] (lossy decoders and resampling overshoot full scale: GTZAN's
loudest hip-hop clips, as Ogg Vorbis resampled to 32 kHz, peak at 2.0-2.3; training's int16
quantisation clips the same way); a larger peak means the wrong scale (int16 values written as
float, a float WAV peaking at 537) and the clip is refused, ``out_of_range``.

Silence: the RMS level of the clipped samples, after removing their mean (DC offset), below
``audio.silence_dbfs`` is ``silent``. Without the DC removal a file holding only a constant
offset measured as loud and was ingested as music and served as a genre.

Both rules judge the samples they are given: in ingestion, what was decoded, which for a long track
decoded in windows (audio.py) is its kept windows, not the parts between them.

The serving graph (models/signatures.py) applies the same two rules in TensorFlow, with its own
``MAX_PEAK`` (a test keeps the two equal); docs/contracts.md writes both rules down.
Only NumPy here: Beam workers, the client and the page import this module.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

MAX_PEAK = 4.0
OUT_OF_RANGE = "out_of_range"
SILENT = "silent"
_CHUNK = 1 << 20  # samples per step: no full-length float64 copy of a long clip


class LevelProblem(NamedTuple):
    reason: str  # OUT_OF_RANGE or SILENT
    detail: str


def _unit(chunk: np.ndarray) -> np.ndarray:
    x = chunk.astype(np.float64)
    return x / 32768.0 if chunk.dtype == np.int16 else x


def peak(samples: np.ndarray) -> float:
    """Largest absolute sample on the [-1, 1] scale (0 for no samples)."""
    if not samples.size:
        return 0.0
    return max(float(np.max(np.abs(_unit(samples[i:i + _CHUNK])))) for i in range(0, samples.size, _CHUNK))


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dBFS of the clipped samples with their mean removed (-inf for silence or no samples)."""
    n = samples.size
    if not n:
        return -math.inf
    steps = range(0, n, _CHUNK)
    mean = sum(float(np.clip(_unit(samples[i:i + _CHUNK]), -1.0, 1.0).sum()) for i in steps) / n
    power = sum(float(np.square(np.clip(_unit(samples[i:i + _CHUNK]), -1.0, 1.0) - mean).sum()) for i in steps) / n
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def check(samples: np.ndarray, silence_dbfs: float) -> Optional[LevelProblem]:
    """None for a usable clip, else why not (amplitude first, then silence)."""
    top = peak(samples)
    if top > MAX_PEAK:
        return LevelProblem(OUT_OF_RANGE, f"the samples peak at {top:.1f}, above the accepted peak of {MAX_PEAK:g}; "
                                          "samples must be float in [-1, 1] (int16 PCM divided by 32768)")
    level = level_dbfs(samples)
    if level < silence_dbfs:
        shown = "-inf" if math.isinf(level) else f"{level:.1f}"
        return LevelProblem(SILENT, f"RMS level {shown} dBFS (DC offset removed) is below the silence floor of "
                                    f"{silence_dbfs:g} dBFS")
    return None
