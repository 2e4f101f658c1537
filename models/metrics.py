"""Segment- and clip-level scoring shared by the trainer, the clip gate and the benchmarks.

A clip's prediction is the mean of its segments' probabilities (soft vote), the same
rule the serving signature applies to a whole clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

# The per-genre clip figures, in the gate's JSON (per genre) and in MLflow ("clip_recall/<genre>").
PER_GENRE_METRICS = ("clip_accuracy", "clip_recall", "clip_precision")


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

    def per_genre(self, genres: Sequence[str]) -> dict[str, dict[str, Optional[float]]]:
        """Clip-level figures per genre (``genres`` is config.genres); see ``per_genre``."""
        return per_genre(self.clip_confusion, genres)

    def confusion_by_genre(self, genres: Sequence[str]) -> dict[str, dict[str, int]]:
        """The clip confusion matrix as numbers keyed by name: {true genre: {predicted genre: clips}}."""
        _check_width(self.clip_confusion, genres)
        return {true: {predicted: int(self.clip_confusion[i, j]) for j, predicted in enumerate(genres)}
                for i, true in enumerate(genres)}


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


def _check_width(matrix: np.ndarray, genres: Sequence[str]) -> None:
    if matrix.shape != (len(genres), len(genres)):
        raise ValueError(f"a {matrix.shape} confusion matrix does not fit the {len(genres)} genres of the label set")


def top1_rates(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 recall and precision per class from a [true, predicted] matrix; NaN where undefined.

    Recall of class c: the share of c's items whose argmax is c (its row); precision: the
    share of items predicted c that are c (its column). NaN for a class with no items
    (recall) or never predicted (precision), not 0, so an absent figure is not a bad one.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / matrix.sum(axis=1), hits / matrix.sum(axis=0)


def _or_none(value: float) -> Optional[float]:
    return float(value) if np.isfinite(value) else None


def per_genre(matrix: np.ndarray, genres: Sequence[str]) -> dict[str, dict[str, Optional[float]]]:
    """Per genre: its clips, the clips predicted as it, and its top-1 accuracy, recall and precision.

    A genre's accuracy is the accuracy on that genre's clips (its slice, as TFMA's genre
    slices report it), which is its top-1 recall; both names are kept because people look
    for either. Undefined figures are None (JSON null).
    """
    _check_width(matrix, genres)
    recall, precision = top1_rates(matrix)
    return {genre: {"clips": int(matrix[i].sum()), "predicted_clips": int(matrix[:, i].sum()),
                    "clip_accuracy": _or_none(recall[i]), "clip_recall": _or_none(recall[i]),
                    "clip_precision": _or_none(precision[i])}
            for i, genre in enumerate(genres)}


def per_genre_metrics(figures: dict[str, dict[str, Optional[float]]]) -> dict[str, float]:
    """``per_genre`` flattened for MLflow as "<figure>/<genre>", undefined figures left out."""
    return {f"{name}/{genre}": value for genre, row in figures.items() for name in PER_GENRE_METRICS
            if (value := row[name]) is not None}


def score(track_ids: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """Segment accuracy and clip (soft-vote) accuracy of one model on one split."""
    if len(labels) == 0:
        raise ValueError("No examples to score: the split is empty.")
    segment_accuracy = float(np.mean(np.argmax(probabilities, axis=1) == labels))
    _, clip_labels, clip_probs = clip_votes(track_ids, probabilities, labels)
    clip_pred = np.argmax(clip_probs, axis=1)
    return Scores(segment_accuracy=segment_accuracy, clip_accuracy=float(np.mean(clip_pred == clip_labels)),
                  segments=len(labels), clips=len(clip_labels), clip_confusion=confusion(clip_labels, clip_pred, probabilities.shape[1]))
