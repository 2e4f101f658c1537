"""The fold protocol: blocks of groups per genre, each held out once, nothing held out trains or stops training."""
from __future__ import annotations

import numpy as np
import pytest

from models import folds
from tests.testkit.training_inputs import separable_segments


def test_gtzan_clips_fall_into_consecutive_blocks_per_genre():
    tracks = [f"{genre}.{n:05d}" for genre in ("blues", "rock") for n in (5, 0, 3, 1, 4, 2)]
    labels = [0] * 6 + [1] * 6
    assignment = folds.fold_of_tracks(tracks, labels, 3, "album")
    assert [assignment[f"blues.{n:05d}"] for n in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [assignment[f"rock.{n:05d}"] for n in range(6)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("group_by, together", [("album", ["A/X/01 a", "A/X/02 b"]),
                                                ("artist", ["A/X/01 a", "A/X/02 b", "A/Y/01 c"])])
def test_a_group_stays_in_one_fold(group_by, together):
    tracks = ["A/X/01 a", "A/X/02 b", "A/Y/01 c", "B/Z/01 d", "C/W/01 e", "D/V/01 f"]
    assignment = folds.fold_of_tracks(tracks, [0] * len(tracks), 3, group_by)
    assert len({assignment[t] for t in together}) == 1
    assert len(set(assignment.values())) == 3


def test_track_ids_that_start_with_their_genre_folder_are_grouped_by_the_path_under_it():
    tracks = [f"{genre}/{genre}.{n:05d}" for genre in ("blues", "rock") for n in (5, 0, 3, 1, 4, 2)]
    assignment = folds.fold_of_tracks(tracks, [0] * 6 + [1] * 6, 3, "album", genre_folders=True)
    assert [assignment[f"blues/blues.{n:05d}"] for n in range(6)] == [0, 0, 1, 1, 2, 2]
    nested = ["rock/A/X/01 a", "rock/A/X/02 b", "rock/A/Y/01 c", "rock/B/Z/01 d", "rock/C/W/01 e"]
    by_artist = folds.fold_of_tracks(nested, [0] * 5, 3, "artist", genre_folders=True)
    assert len({by_artist[t] for t in nested[:3]}) == 1 and len(set(by_artist.values())) == 3


def test_fewer_than_three_folds_with_tracks_are_refused():
    segments = separable_segments()
    assignment = folds.fold_of_tracks(segments.track_ids, segments.labels, 2, "track")
    with pytest.raises(ValueError, match="the protocol needs 3"):
        folds.cross_validate(segments, assignment, lambda kept, stop, held: np.eye(2)[np.zeros(len(held), int)])


def test_every_recorded_clip_is_held_out_once_and_never_trains_or_stops_its_own_fold():
    segments = separable_segments(views=True)
    assignment = folds.fold_of_tracks(segments.track_ids, segments.labels, 3, "track")
    held_tracks: list[str] = []

    def nearest_mean(kept: folds.Segments, stop: folds.Segments, held: np.ndarray) -> np.ndarray:
        kept_folds = {assignment[t] for t in kept.track_ids}
        stop_folds = {assignment[t] for t in stop.track_ids}
        assert len(kept_folds) == 1 and len(stop_folds) == 1 and kept_folds != stop_folds
        assert not stop.is_view.any()
        means = np.stack([kept.inputs[kept.labels == c].mean(axis=0) for c in (0, 1)])
        distances = ((held[:, None, :] - means[None]) ** 2).sum(axis=2)
        held_tracks.extend(t for t in segments.track_ids if assignment[t] not in kept_folds | stop_folds)
        return np.eye(2)[np.argmin(distances, axis=1)]

    score = folds.cross_validate(segments, assignment, nearest_mean)
    assert (score.clips, score.clips_correct, score.clip_accuracy) == (12, 12, 1.0)
    assert score.segment_accuracy == 1.0
    assert sorted(set(held_tracks)) == sorted(set(segments.track_ids))


def test_a_wrong_model_scores_zero():
    segments = separable_segments()
    assignment = folds.fold_of_tracks(segments.track_ids, segments.labels, 3, "track")
    score = folds.cross_validate(segments, assignment, lambda kept, stop, held: np.eye(2)[(held[:, 0] < 0).astype(int)])
    assert score.clip_accuracy == 0.0
