"""The fold protocol a setting is judged by: every train and eval clip held out once, clip accuracy over all
(51 eval clips cannot tell close settings apart); the test split is never read.

Folds are consecutive blocks of each genre's split groups in key-number order, so an album or artist stays on
one side. Fold k trains on every block but k and the next, which stops the training: the held-out block chooses
nothing, not even the epoch. Recorded segments are scored by the shipped vote; training views never are."""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Optional, Sequence, Union

import numpy as np

from audio.groups import folder_key, layout_path
from config.settings import MIN_TUNE_FOLDS as MIN_FOLDS
from models import metrics

Inputs = Union[np.ndarray, dict[str, np.ndarray]]
_NUMBER = re.compile(r"(\d+)$")


@dataclasses.dataclass
class Segments:
    """Model inputs (or a frozen body's embeddings) of train and eval segments, with what scoring needs."""

    inputs: Inputs
    labels: np.ndarray  # genre index per segment
    track_ids: np.ndarray  # str per segment
    is_view: np.ndarray  # bool per segment: a training view's, not the recording's

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, mask: np.ndarray) -> "Segments":
        inputs = {k: v[mask] for k, v in self.inputs.items()} if isinstance(self.inputs, dict) else self.inputs[mask]
        return Segments(inputs, self.labels[mask], self.track_ids[mask], self.is_view[mask])


# (segments to train on, segments whose loss stops the training, inputs to score) -> probabilities of those.
TrainAndPredict = Callable[[Segments, Segments, Inputs], np.ndarray]


def fold_of_tracks(track_ids: Sequence[str], labels: Sequence[int], folds: int, group_by: str,
                   genre_folders: bool = False) -> dict[str, int]:
    """Track id -> fold (module docstring); a group filed under two genres takes the fold of the first.
    ``genre_folders``: the track ids start with their genre folder, which the folder rules do not read."""
    group_of = {str(t): str(t) if group_by == "track" else folder_key(layout_path(str(t), genre_folders), group_by)
                for t in set(track_ids)}
    by_genre: dict[int, set[str]] = {}
    for track, label in zip(track_ids, labels):
        by_genre.setdefault(int(label), set()).add(group_of[str(track)])
    fold_of_group: dict[str, int] = {}
    for genre in sorted(by_genre):
        groups = sorted(by_genre[genre], key=lambda g: (int(m.group(1)) if (m := _NUMBER.search(g)) else -1, g))
        for fold, block in enumerate(np.array_split(np.array(groups, dtype=object), folds)):
            for group in block:
                fold_of_group.setdefault(str(group), fold)
    return {track: fold_of_group[group] for track, group in group_of.items()}


def cross_validate(segments: Segments, assignment: dict[str, int], train_and_predict: TrainAndPredict,
                   on_fold: Optional[Callable[[int, int], None]] = None) -> metrics.Scores:
    """Each fold held out once (module docstring): the score of all held-out recorded segments; ``on_fold`` per fold."""
    fold = np.array([assignment[str(t)] for t in segments.track_ids])
    recorded = ~segments.is_view
    blocks = sorted(set(fold.tolist()))
    if len(blocks) < MIN_FOLDS:
        raise ValueError(f"{len(blocks)} folds hold tracks; the protocol needs {MIN_FOLDS}: more train and eval "
                         "groups, or fewer folds.")
    probabilities = None
    for i, k in enumerate(blocks):
        stop_block = blocks[(i + 1) % len(blocks)]
        held = (fold == k) & recorded
        stop = (fold == stop_block) & recorded
        kept = (fold != k) & (fold != stop_block)
        predicted = train_and_predict(segments.take(kept), segments.take(stop), segments.take(held).inputs)
        if probabilities is None:
            probabilities = np.zeros((len(segments), predicted.shape[1]), np.float64)
        probabilities[held] = predicted
        if on_fold is not None:
            on_fold(i + 1, len(blocks))
    return metrics.score(segments.track_ids[recorded], probabilities[recorded], segments.labels[recorded])
