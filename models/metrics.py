"""Segment- and clip-level scoring shared by the trainer, the clip gate and the benchmarks.

A clip's prediction is the mean of its segments' probabilities (soft vote), the same
rule the serving signature applies to a whole clip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scores:
    segment_accuracy: float
    clip_accuracy: float
    segments: int
    clips: int
    clip_confusion: np.ndarray  # [true genre, predicted genre] counts over clips

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}segment_accuracy": self.segment_accuracy, f"{prefix}clip_accuracy": self.clip_accuracy,
                f"{prefix}segments": float(self.segments), f"{prefix}clips": float(self.clips)}


def clip_votes(track_ids: np.ndarray, probabilities: np.ndarray, labels: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average segment probabilities per track: (track ids, clip labels, clip probabilities)."""
    tracks, index = np.unique(track_ids, return_inverse=True)
    sums = np.zeros((len(tracks), probabilities.shape[1]))
    np.add.at(sums, index, probabilities)
    counts = np.bincount(index, minlength=len(tracks))[:, None]
    clip_labels = np.zeros(len(tracks), dtype=np.int64)
    clip_labels[index] = labels
    return tracks, clip_labels, sums / counts


def confusion(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """[true, predicted] counts; ``num_classes`` is len(config.genres), the model head's width."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def score(track_ids: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """Segment accuracy and clip (soft-vote) accuracy of one model on one split."""
    if len(labels) == 0:
        raise ValueError("No examples to score: the split is empty.")
    segment_accuracy = float(np.mean(np.argmax(probabilities, axis=1) == labels))
    _, clip_labels, clip_probs = clip_votes(track_ids, probabilities, labels)
    clip_pred = np.argmax(clip_probs, axis=1)
    return Scores(segment_accuracy=segment_accuracy, clip_accuracy=float(np.mean(clip_pred == clip_labels)),
                  segments=len(labels), clips=len(clip_labels), clip_confusion=confusion(clip_labels, clip_pred, probabilities.shape[1]))
