"""The project's genres as AudioSet classes, and zero-shot genre scores from mn04's 527 logits.

The indices are pinned (a test checks them against AudioSet's class_labels_indices.csv), so nothing reads the csv."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from config.settings import GENRES

# project genre -> (AudioSet display name, index among the 527 classes)
AUDIOSET_GENRES: dict[str, tuple[str, int]] = {
    "blues": ("Blues", 251),
    "classical": ("Classical music", 237),
    "country": ("Country", 229),
    "disco": ("Disco", 236),
    "hiphop": ("Hip hop music", 217),
    "jazz": ("Jazz", 235),
    "metal": ("Heavy metal", 220),
    "pop": ("Pop music", 216),
    "reggae": ("Reggae", 228),
    "rock": ("Rock music", 219),
}


def audioset_indices(genres: Sequence[str] = GENRES) -> list[int]:
    """The AudioSet class index of each genre, in ``genres``' order; a ValueError names unmapped genres."""
    unmapped = [g for g in genres if g not in AUDIOSET_GENRES]
    if unmapped:
        raise ValueError(f"No AudioSet class is mapped for genre(s) {unmapped}; zero-shot scores cover only "
                         f"{sorted(AUDIOSET_GENRES)} (models/efficientat/genres.py).")
    return [AUDIOSET_GENRES[g][1] for g in genres]


def zero_shot_genre_scores(logits: np.ndarray, genres: Sequence[str] = GENRES) -> np.ndarray:
    """Per-genre scores (..., len(genres)) summing to 1, from AudioSet logits (..., 527): AudioSet's sigmoids are
    multi-label and a track has one genre here, so a softmax over the mapped logits, which keeps the ranking and
    still separates genres when every sigmoid is near 0 or 1."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.shape[-1:] != (527,):
        raise ValueError(f"Expected AudioSet logits with 527 classes on the last axis, got shape {logits.shape}.")
    chosen = logits[..., audioset_indices(genres)]
    shifted = np.exp(chosen - chosen.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
