"""Segment- and clip-level scoring shared by the trainer, the clip gate and the benchmarks; a clip's prediction
is the mean of its segments' probabilities (soft vote), as the serving signature computes it."""
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

    @property
    def clips_correct(self) -> int:
        return int(np.trace(self.clip_confusion))

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


class ClipAccumulator:
    """Segment and clip scores of one model, fed one batch of segments at a time: per-track running sums of the
    segments' probabilities, so a split of any size takes one pass holding nothing per segment."""

    def __init__(self) -> None:
        self._slots: dict[bytes, int] = {}  # track id -> row of the per-track arrays, in order of first sight
        self._sums = np.zeros((0, 0))
        self._counts = np.zeros(0, dtype=np.int64)
        self._labels = np.zeros(0, dtype=np.int64)
        self._segment_confusion = np.zeros((0, 0), dtype=np.int64)

    @property
    def segments(self) -> int:
        return int(self._counts.sum())

    @property
    def segment_confusion(self) -> np.ndarray:
        """[true, predicted] counts over segments (the argmax of each segment's probabilities)."""
        return self._segment_confusion.copy()

    def add(self, track_ids: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> None:
        """Add one batch of segments: their track ids, probabilities [segments, classes] and labels."""
        rows, labels = np.asarray(probabilities), np.asarray(labels, dtype=np.int64)
        width = rows.shape[-1] if rows.ndim == 2 else 0
        if width and len(labels) and (labels.min() < 0 or labels.max() >= width):
            raise ValueError(f"a label outside 0..{width - 1} (labels {labels.min()}..{labels.max()}): the model "
                             f"scores {width} genres. Check that the examples and the model share one label set")
        if rows.ndim != 2 or not len(track_ids) == len(rows) == len(labels):
            raise ValueError(f"a batch needs one track id, one label and one row per segment, not {len(track_ids)} "
                             f"track ids, {len(labels)} labels and rows of shape {rows.shape}")
        if not len(labels):
            return
        if not self._sums.shape[1]:
            self._sums = np.zeros((0, width))
            self._segment_confusion = np.zeros((width, width), dtype=np.int64)
        elif width != self._sums.shape[1]:
            raise ValueError(f"a batch of {width} numbers per segment after batches of {self._sums.shape[1]}: "
                             "one model scores the whole split")
        known = len(self._slots)
        index = np.array([self._slots.setdefault(track, len(self._slots)) for track in track_ids], dtype=np.int64)
        if len(self._slots) > len(self._counts):  # capacity doubles: growing costs O(tracks) over the split
            extra = max(len(self._slots), 2 * len(self._counts), 64) - len(self._counts)
            self._sums = np.concatenate([self._sums, np.zeros((extra, self._sums.shape[1]))])
            self._counts = np.concatenate([self._counts, np.zeros(extra, dtype=np.int64)])
            self._labels = np.concatenate([self._labels, np.zeros(extra, dtype=np.int64)])
        slots, first = np.unique(index, return_index=True)
        fresh = slots >= known  # a track first seen in this batch takes its first segment's label
        self._labels[slots[fresh]] = labels[first[fresh]]
        mixed = self._labels[index] != labels
        if mixed.any():
            at = int(np.argmax(mixed))
            track = track_ids[at].decode() if isinstance(track_ids[at], bytes) else str(track_ids[at])
            raise ValueError(f"track {track} has segments of two labels ({self._labels[index[at]]} and {labels[at]}): "
                             "a track is one clip of one genre. Check the track ids the examples carry")
        np.add.at(self._sums, index, rows)  # in segment order, as one sum over the whole split adds them
        self._counts += np.bincount(index, minlength=len(self._counts))
        self._segment_confusion += confusion(labels, np.argmax(rows, axis=1), width)

    def votes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(track ids, clip labels, clip probabilities: the means of the segments'), sorted by track id."""
        tracks = np.array(list(self._slots))
        order = np.argsort(tracks, kind="stable")
        return tracks[order], self._labels[order], self._sums[order] / self._counts[order][:, None]

    def score(self) -> Scores:
        """Segment accuracy and clip (soft-vote) accuracy over every batch added."""
        if not self.segments:
            raise ValueError("No examples to score: the split is empty.")
        _, clip_labels, clip_probs = self.votes()
        clip_pred = np.argmax(clip_probs, axis=1)
        return Scores(segment_accuracy=int(np.trace(self._segment_confusion)) / self.segments,
                      clip_accuracy=float(np.mean(clip_pred == clip_labels)), segments=self.segments,
                      clips=len(clip_labels), clip_confusion=confusion(clip_labels, clip_pred, self._sums.shape[1]))


Votes = tuple[np.ndarray, np.ndarray, np.ndarray]  # (track ids, clip labels, clip probabilities)


def fuse_votes(votes: Sequence[Votes]) -> tuple[Votes, int]:
    """Late fusion: the mean of the models' clip probabilities over the clips all scored (sorted by track id), and
    how many clips some but not all models scored."""
    by_model = [dict(zip(ids, zip(labels, probabilities))) for ids, labels, probabilities in votes]
    shared = sorted(set.intersection(*(set(v) for v in by_model)))
    labels = np.array([by_model[0][t][0] for t in shared], dtype=np.int64)
    for model in by_model[1:]:
        differ = [t for t, label in zip(shared, labels) if model[t][0] != label]
        if differ:
            raise ValueError(f"the fused models label clip {differ[0]} differently ({len(differ)} clips): their "
                             "examples come from different label sets or data roots")
    fused = np.mean([[v[t][1] for t in shared] for v in by_model], axis=0).reshape(len(shared), -1)
    left_out = len(set.union(*(set(v) for v in by_model))) - len(shared)
    return (np.array(shared, dtype=object), labels, fused), left_out


def confusion(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """[true, predicted] counts; ``num_classes`` is len(config.genres), the model head's width."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def _check_width(matrix: np.ndarray, genres: Sequence[str]) -> None:
    if matrix.shape != (len(genres), len(genres)):
        raise ValueError(f"a {matrix.shape} confusion matrix does not fit the {len(genres)} genres of the label set")


def top1_rates(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 recall (rows) and precision (columns) per class; NaN, not 0, where undefined: absent is not bad."""
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / matrix.sum(axis=1), hits / matrix.sum(axis=0)


def _or_none(value: float) -> Optional[float]:
    return float(value) if np.isfinite(value) else None


def per_genre(matrix: np.ndarray, genres: Sequence[str]) -> dict[str, dict[str, Optional[float]]]:
    """Per genre: its clips, the clips predicted as it, top-1 accuracy, recall and precision (None if undefined);
    accuracy (its slice, as TFMA reports it) equals recall, and both names are kept because people look for either."""
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
    """Segment accuracy and clip (soft-vote) accuracy of one model on one split, given whole."""
    accumulator = ClipAccumulator()
    accumulator.add(track_ids, probabilities, labels)
    return accumulator.score()
