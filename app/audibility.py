"""Whether a clip carries enough music for the page to judge it, or is too quiet or too noisy.

The model answers anything, so the page checks first and says why. A recording below :data:`QUIET_DBFS` is
mostly microphone noise; music changes over time in every band and steady noise does not, so a clip whose
mean band power stands under :data:`STEADY_NOISE_DB` above its floor is too noisy. No TensorFlow here.
"""
from __future__ import annotations

import functools
from typing import Optional

import librosa
import numpy as np
import scipy.fft

from audio import levels

QUIET_DBFS = -50.0
STEADY_NOISE_DB = 3.0
N_FFT, HOP, BANDS = 2048, 512, 40
_FRAMES_PER_BLOCK = 512  # frames transformed at once: about 8 MB of spectrum, whatever the clip's length


@functools.lru_cache(maxsize=4)
def _mel(sample_rate: int) -> np.ndarray:
    return librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=BANDS).astype(np.float32)


def band_powers(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """[bands, frames] mel-band power of Hann-windowed frames, computed a block of frames at a time."""
    x = np.asarray(waveform, dtype=np.float32)
    if x.size < N_FFT:
        x = np.pad(x, (0, N_FFT - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    window, mel = np.hanning(N_FFT).astype(np.float32), _mel(sample_rate)
    blocks = []
    for i in range(0, len(frames), _FRAMES_PER_BLOCK):
        spectrum = scipy.fft.rfft(frames[i:i + _FRAMES_PER_BLOCK] * window, axis=1)  # float32 in, complex64 out
        blocks.append(mel @ (spectrum.real ** 2 + spectrum.imag ** 2).T)
    return np.concatenate(blocks, axis=1)


def music_over_floor_db(waveform: np.ndarray, sample_rate: int) -> float:
    """How far the clip's mean band power stands above its steady floor (10th percentile), in dB."""
    powers = band_powers(waveform, sample_rate) + 1e-12
    return float(10.0 * np.log10(powers.mean(axis=1).sum() / np.percentile(powers, 10, axis=1).sum()))


def problem(name: str, waveform: np.ndarray, sample_rate: int, recorded: bool) -> Optional[str]:
    """None for a clip the page sends to the model, else a message naming the problem and the fix."""
    level = levels.level_dbfs(waveform)
    if recorded and level < QUIET_DBFS:
        return (f"{name} is too quiet to judge: its level is {level:.0f} dBFS, below the {QUIET_DBFS:g} dBFS "
                "this page needs from a microphone, so it is mostly the microphone's own noise. Record closer "
                "to the music or raise the input volume, then record again.")
    contrast = music_over_floor_db(waveform, sample_rate)
    if contrast < STEADY_NOISE_DB:
        return (f"{name} is too noisy to judge: it sounds like steady noise (it stands {contrast:.1f} dB above its "
                f"steady floor; music stands at least {STEADY_NOISE_DB:g} dB above it). "
                "Record closer to the music, away from fans and hiss, or choose another clip.")
    return None
