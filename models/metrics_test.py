"""Per-genre top-1 figures from a confusion matrix, checked against counts done by hand."""
from __future__ import annotations

import numpy as np
import pytest

from models import metrics

GENRES = ("ambient", "drill", "polka")


def scores_of(clips: list[tuple[int, int]]) -> metrics.Scores:
    """metrics.score on one segment per clip: (true label, predicted label) pairs."""
    labels = np.array([true for true, _ in clips])
    probabilities = np.full((len(clips), len(GENRES)), 0.1)
    for row, (_, predicted) in enumerate(clips):
        probabilities[row, predicted] = 0.8
    return metrics.score(np.array([f"t{i}".encode() for i in range(len(clips))]), probabilities, labels)


def test_per_genre_figures_match_a_hand_count():
    # ambient: 3 of 4 right (one called drill); drill: 1 of 2 (one called ambient); polka: no clip.
    scores = scores_of([(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 0)])
    figures = scores.per_genre(GENRES)
    assert figures["ambient"] == {"clips": 4, "predicted_clips": 4, "clip_accuracy": 0.75, "clip_recall": 0.75,
                                  "clip_precision": 0.75}
    assert figures["drill"] == {"clips": 2, "predicted_clips": 2, "clip_accuracy": 0.5, "clip_recall": 0.5,
                                "clip_precision": 0.5}
    # No polka clip and none predicted polka: undefined, not 0.
    assert figures["polka"] == {"clips": 0, "predicted_clips": 0, "clip_accuracy": None, "clip_recall": None,
                                "clip_precision": None}
    assert scores.confusion_by_genre(GENRES) == {"ambient": {"ambient": 3, "drill": 1, "polka": 0},
                                                 "drill": {"ambient": 1, "drill": 1, "polka": 0},
                                                 "polka": {"ambient": 0, "drill": 0, "polka": 0}}


def test_recall_is_the_share_of_a_genres_clips_whose_argmax_is_the_genre():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, 60)
    probabilities = rng.dirichlet(np.ones(3), 60)
    scores = metrics.score(np.array([f"t{i}".encode() for i in range(60)]), probabilities, labels)
    figures = scores.per_genre(GENRES)
    predicted = probabilities.argmax(axis=1)
    for c, genre in enumerate(GENRES):
        assert figures[genre]["clip_recall"] == pytest.approx(np.mean(predicted[labels == c] == c))
        assert figures[genre]["clip_precision"] == pytest.approx(np.mean(labels[predicted == c] == c))
        assert figures[genre]["clip_accuracy"] == figures[genre]["clip_recall"]
    # The per-genre figures add up to the overall one.
    hits = sum(figures[g]["clip_recall"] * figures[g]["clips"] for g in GENRES)
    assert hits / scores.clips == pytest.approx(scores.clip_accuracy)


def test_a_genre_never_predicted_has_no_precision_but_a_recall_of_zero():
    figures = scores_of([(0, 0), (2, 0)]).per_genre(GENRES)
    assert figures["polka"]["clip_recall"] == 0.0 and figures["polka"]["clip_precision"] is None
    assert figures["ambient"]["clip_precision"] == 0.5


def test_mlflow_names_leave_out_undefined_figures():
    flat = metrics.per_genre_metrics(scores_of([(0, 0), (2, 0)]).per_genre(GENRES))
    assert flat == {"clip_accuracy/ambient": 1.0, "clip_recall/ambient": 1.0, "clip_precision/ambient": 0.5,
                    "clip_accuracy/polka": 0.0, "clip_recall/polka": 0.0}


def test_a_matrix_that_does_not_fit_the_label_set_is_refused():
    with pytest.raises(ValueError, match="3 genres"):
        metrics.per_genre(np.zeros((2, 2), dtype=np.int64), GENRES)


def segments_of_tracks(seed: int, tracks: int = 9, segments: int = 70, classes: int = 3):
    """Segments of ``tracks`` tracks in shuffled order: (track ids, probabilities, labels), one label per track."""
    rng = np.random.default_rng(seed)
    track_of = rng.integers(0, tracks, segments)
    track_ids = np.array([f"t{t:02d}".encode() for t in track_of])
    labels = track_of % classes
    return track_ids, rng.dirichlet(np.ones(classes), segments).astype(np.float32), labels


def test_the_accumulator_averages_each_tracks_segments_as_counted_by_hand():
    track_ids, probabilities, labels = segments_of_tracks(3)
    accumulator = metrics.ClipAccumulator()
    for start in range(0, len(labels), 16):  # batches cut through tracks
        accumulator.add(track_ids[start:start + 16], probabilities[start:start + 16], labels[start:start + 16])
    scores = accumulator.score()
    expected_hits = 0
    for track in sorted(set(track_ids)):
        mine = track_ids == track
        expected_hits += int(np.argmax(probabilities[mine].mean(axis=0)) == labels[mine][0])
    assert scores.clips == len(set(track_ids)) and scores.segments == len(labels)
    assert scores.clip_accuracy == pytest.approx(expected_hits / scores.clips)
    assert scores.segment_accuracy == pytest.approx(np.mean(probabilities.argmax(axis=1) == labels))
    np.testing.assert_array_equal(accumulator.segment_confusion,
                                  metrics.confusion(labels, probabilities.argmax(axis=1), 3))


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_batches_of_any_size_score_exactly_as_the_whole_split(batch):
    track_ids, probabilities, labels = segments_of_tracks(11)
    accumulator = metrics.ClipAccumulator()
    for start in range(0, len(labels), batch):
        accumulator.add(track_ids[start:start + batch], probabilities[start:start + batch], labels[start:start + batch])
    streamed, whole = accumulator.score(), metrics.score(track_ids, probabilities, labels)
    assert streamed.as_dict() == whole.as_dict()  # equal, not approximately: the same sums in the same order
    np.testing.assert_array_equal(streamed.clip_confusion, whole.clip_confusion)


def test_clip_votes_are_sorted_by_track_and_keep_each_tracks_label():
    track_ids = np.array([b"b", b"a", b"b", b"c"])
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    accumulator = metrics.ClipAccumulator()
    accumulator.add(track_ids, rows, np.array([0, 1, 0, 1]))
    tracks, clip_labels, means = accumulator.votes()
    assert list(tracks) == [b"a", b"b", b"c"] and list(clip_labels) == [1, 0, 1]
    np.testing.assert_array_equal(means, [[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])


def test_an_empty_split_is_refused():
    accumulator = metrics.ClipAccumulator()
    accumulator.add(np.array([], dtype=bytes), np.zeros((0, 3)), np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="split is empty"):
        accumulator.score()


def test_a_track_with_two_labels_and_a_label_outside_the_head_are_refused():
    accumulator = metrics.ClipAccumulator()
    accumulator.add(np.array([b"t1"]), np.eye(3)[[0]], np.array([0]))
    with pytest.raises(ValueError, match="track t1 has segments of two labels"):
        accumulator.add(np.array([b"t2", b"t1"]), np.eye(3)[[1, 1]], np.array([1, 2]))
    with pytest.raises(ValueError, match="label outside 0..2"):
        metrics.ClipAccumulator().add(np.array([b"t1"]), np.eye(3)[[0]], np.array([3]))
    with pytest.raises(ValueError, match="4 numbers per segment after batches of 3"):
        accumulator.add(np.array([b"t3"]), np.full((1, 4), 0.25), np.array([0]))


def test_late_fusion_averages_clip_probabilities_over_the_clips_every_model_scored():
    a = metrics.ClipAccumulator()
    a.add(np.array(["x", "x", "y"], dtype=object), np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4]]), np.array([0, 0, 1]))
    b = (np.array(["y", "z"], dtype=object), np.array([1, 0]), np.array([[0.0, 1.0], [0.5, 0.5]]))
    (ids, labels, fused), left_out = metrics.fuse_votes([a.votes(), b])
    assert list(ids) == ["y"] and list(labels) == [1] and left_out == 2  # x only in a, z only in b
    np.testing.assert_allclose(fused, [[0.3, 0.7]])  # a says 0.6 / 0.4, b 0.0 / 1.0: the fused vote is right


def test_models_that_disagree_on_a_clips_label_cannot_be_fused():
    one = (np.array(["x"], dtype=object), np.array([0]), np.array([[1.0, 0.0]]))
    other = (np.array(["x"], dtype=object), np.array([1]), np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="label clip x differently"):
        metrics.fuse_votes([one, other])
