"""The one amplitude rule and the one silence rule of ingestion, the tagger, the client and the page.

A peak up to :data:`MAX_PEAK` is clipped to [-1, 1] (lossy decoders and resampling overshoot full scale);
a larger one means the wrong scale and is ``out_of_range``. The RMS level with the DC offset removed (so a
constant offset is not loud) below ``audio.silence_dbfs`` is ``silent``. The serving graph applies the same
rules (models/signatures.py, docs/contracts.md). NumPy only: Beam workers, the client and the page import it.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np

from audio.filecheck import Problem

MAX_PEAK = 4.0
OUT_OF_RANGE = "out_of_range"
SILENT = "silent"
_CHUNK = 1 << 20  # samples per step: no full-length float64 copy of a long clip


def _chunks(samples: np.ndarray) -> Iterator[np.ndarray]:
    """The samples as float64 on the [-1, 1] scale, _CHUNK at a time."""
    for i in range(0, samples.size, _CHUNK):
        chunk = samples[i:i + _CHUNK].astype(np.float64)
        yield chunk / 32768.0 if samples.dtype == np.int16 else chunk


def peak(samples: np.ndarray) -> float:
    """Largest absolute sample on the [-1, 1] scale (0 for no samples)."""
    return max((float(np.max(np.abs(chunk))) for chunk in _chunks(samples)), default=0.0)


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dBFS of the clipped samples with their mean removed (-inf for silence or no samples)."""
    n = samples.size
    if not n:
        return -math.inf
    mean = sum(float(np.clip(chunk, -1.0, 1.0).sum()) for chunk in _chunks(samples)) / n
    power = sum(float(np.square(np.clip(chunk, -1.0, 1.0) - mean).sum()) for chunk in _chunks(samples)) / n
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def check(samples: np.ndarray, silence_dbfs: float) -> Optional[Problem]:  # reason OUT_OF_RANGE or SILENT
    """None for a usable clip, else why not (amplitude first, then silence)."""
    top = peak(samples)
    if top > MAX_PEAK:
        return Problem(OUT_OF_RANGE, f"the samples peak at {top:.1f}, above the accepted peak of {MAX_PEAK:g}; "
                                          "samples must be float in [-1, 1] (int16 PCM divided by 32768)")
    level = level_dbfs(samples)
    if level < silence_dbfs:
        shown = "-inf" if math.isinf(level) else f"{level:.1f}"
        return Problem(SILENT, f"RMS level {shown} dBFS (DC offset removed) is below the silence floor of "
                                    f"{silence_dbfs:g} dBFS")
    return None
