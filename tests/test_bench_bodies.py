"""bench.pretrained_bodies' views, probes, cache and report (fast: toy embeddings, no TensorFlow model)."""
from __future__ import annotations

import numpy as np
import pytest

from bench import pretrained_bodies as bodies


def _split(rng: np.random.Generator, clips: int, separation: float, first: int = 0) -> tuple:
    """Ten genres, clips x 4 segments each; genre g's embeddings centred on separation * e_g. Track ids are
    ``<genre>.<number>`` as GTZAN's, so folds of consecutive numbers can be cut per genre."""
    genres = np.arange(clips) % 10
    labels = np.repeat(genres, 4)
    tracks = np.repeat(np.array([f"g{g}.{first + i:05d}".encode() for i, g in enumerate(genres)]), 4)
    x = rng.standard_normal((len(labels), 16)).astype(np.float32)
    x[np.arange(len(labels)), labels] += separation
    return x, labels, tracks


def test_probe_scores_the_eval_split_at_segment_and_clip_level():
    rng = np.random.default_rng(0)
    separable = {"train": _split(rng, 40, 4.0), "eval": _split(rng, 20, 4.0, first=100)}
    segment, clip = bodies.probe(separable, 1.0)
    assert segment > 0.9 and clip == 1.0
    noise = {"train": _split(rng, 40, 0.0), "eval": _split(rng, 20, 0.0, first=100)}
    segment, clip = bodies.probe(noise, 1.0)
    assert segment < 0.4  # chance is 0.1: the probe cannot score what is not there


def test_fold_probe_holds_every_clip_out_once_and_cannot_score_noise():
    rng = np.random.default_rng(1)
    x, labels, tracks = _split(rng, 100, 4.0)
    clips, vote, clip_level = bodies.fold_probe(x, labels, tracks, 1.0)
    assert clips == 100 and vote >= 95 and clip_level >= 95
    # Embeddings that name the clip but not the genre: in-sample they would be learnt, out of fold they cannot.
    identity = np.repeat(rng.standard_normal((100, 16)).astype(np.float32), 4, axis=0)
    clips, vote, clip_level = bodies.fold_probe(identity, labels, tracks, 1.0)
    assert clips == 100 and vote < 40 and clip_level < 40


def test_clip_means_average_each_clips_segments():
    x = np.array([[0.0], [2.0], [10.0], [20.0]])
    tracks, means, labels = bodies.clip_means(x, np.array([3, 3, 1, 1]), np.array(["b.1", "b.1", "a.1", "a.1"]))
    assert list(tracks) == ["a.1", "b.1"] and means[:, 0].tolist() == [15.0, 1.0] and labels.tolist() == [1, 3]


def test_views_take_their_bodies_columns_side_by_side():
    outputs = {"MSD_musicnn": np.arange(2 * 1506).reshape(2, 1506), "MSD_vgg": -np.arange(2 * 896).reshape(2, 896)}
    view = next(v for v in bodies.VIEWS if v.name.startswith("MSD_musicnn mean+max + MSD_vgg block means"))
    assert view.bodies() == {"MSD_musicnn", "MSD_vgg"}
    x = view.of(outputs)
    assert x.shape == (2, 1506 + 640)
    assert x[0, 0] == 0 and x[0, 1505] == 1505 and x[0, 1506] == -256  # the VGG's block means follow pool5
    mean_only = next(v for v in bodies.VIEWS if v.name.startswith("MSD_musicnn mean pool"))
    assert mean_only.of(outputs).shape == (2, 753)


def test_embeddings_are_computed_once_and_read_back_from_the_cache(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        tracks = np.array([b"a", b"a", b"b"], dtype=object)  # as models.training.predict_split returns them
        return {split: bodies.Embedded(np.ones((3, 2), np.float32), np.array([0, 1, 2]), tracks)
                for split in bodies.SPLITS}

    first, _ = bodies.cached_embeddings(tmp_path, "MSD_vgg", compute)
    again, _ = bodies.cached_embeddings(tmp_path, "MSD_vgg", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(again["eval"].embeddings, first["eval"].embeddings)
    assert again["train"].track_ids.tolist() == [b"a", b"a", b"b"]


def test_report_names_the_protocol_and_every_row():
    rows = [bodies.Row("MSD_musicnn mean pool (753)", 0.01, 0.682, 0.725, 390, 300, 310, 97.0),
            bodies.Row("MSD_vgg pool5 (256)", 0.01, 0.55, 0.569, 390, 250, 260, 88.0)]
    text = bodies.report(rows, 51, 507, "/x/Transform/transformed_examples/7")
    assert "lists-trainval" in text and "51 clips, 507 segments" in text and "390 train and eval clips" in text
    assert "| MSD_musicnn mean pool (753) | 0.01 | 0.682 | 0.725 | 300/390 (0.769) | 310/390 (0.795) | 97 |" in text
    assert text.count("\n| MSD_") == 2


def test_unknown_bodies_are_refused():
    assert bodies.parse_bodies("MSD_vgg, MSD_musicnn") == ["MSD_vgg", "MSD_musicnn"]
    with pytest.raises(Exception, match="MSD_musicnn"):
        bodies.parse_bodies("MSD_musicnn_big")


def test_training_views_are_left_out_of_the_probes():
    from components.audio_example_gen.views import VIEW_INDEX_STRIDE

    embedded = bodies.Embedded(np.arange(8, dtype=np.float32).reshape(4, 2), np.array([0, 0, 1, 1]),
                               np.array([b"g0.00001", b"g0.00001", b"g1.00002", b"g1.00002"]))
    kept = bodies.recordings_only(embedded, np.array([0, VIEW_INDEX_STRIDE, 1, 2 * VIEW_INDEX_STRIDE + 1]))
    assert kept.embeddings.tolist() == [[0.0, 1.0], [4.0, 5.0]]
    assert kept.labels.tolist() == [0, 1] and kept.track_ids.tolist() == [b"g0.00001", b"g1.00002"]
