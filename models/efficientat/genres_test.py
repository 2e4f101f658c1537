"""The pinned AudioSet genre indices and the zero-shot scores."""
import csv

import numpy as np
import pytest

from config.settings import GENRES
from models.efficientat import zero_shot_genre_scores
from models.efficientat.genres import AUDIOSET_GENRES, audioset_indices


def test_every_project_genre_is_mapped_to_a_distinct_class():
    assert set(AUDIOSET_GENRES) == set(GENRES)
    assert len(set(audioset_indices())) == len(GENRES)


@pytest.mark.real_data
def test_pinned_indices_match_audioset_labels(audioset_labels_csv):
    with open(audioset_labels_csv, newline="") as f:
        names = {int(row["index"]): row["display_name"] for row in csv.DictReader(f)}
    assert len(names) == 527
    assert {genre: (names[index], index) for genre, (_, index) in AUDIOSET_GENRES.items()} == AUDIOSET_GENRES


def test_scores_are_a_softmax_over_the_mapped_logits_only():
    logits = np.random.default_rng(2).normal(size=(3, 527)).astype(np.float32)
    scores = zero_shot_genre_scores(logits)
    assert scores.shape == (3, len(GENRES))
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, rtol=1e-6)
    chosen = logits[:, audioset_indices()]
    assert np.array_equal(scores.argsort(axis=-1), chosen.argsort(axis=-1))
    logits[:, 0] += 100.0  # "Speech": not a genre, changes nothing
    np.testing.assert_allclose(zero_shot_genre_scores(logits), scores)


def test_metal_logit_wins_metal():
    logits = np.full(527, -8.0, np.float32)
    logits[AUDIOSET_GENRES["metal"][1]] = 2.0
    scores = zero_shot_genre_scores(logits)
    assert GENRES[int(scores.argmax())] == "metal" and scores.max() > 0.99


def test_subset_and_order_follow_the_genres_given():
    logits = np.zeros(527, np.float32)
    logits[AUDIOSET_GENRES["jazz"][1]] = 1.0
    scores = zero_shot_genre_scores(logits, genres=("rock", "jazz"))
    assert scores.shape == (2,) and scores[1] > scores[0]


def test_unmapped_genre_and_wrong_width_are_refused():
    with pytest.raises(ValueError, match="ambient"):
        zero_shot_genre_scores(np.zeros(527), genres=("rock", "ambient"))
    with pytest.raises(ValueError, match="527"):
        zero_shot_genre_scores(np.zeros((2, 10)))
