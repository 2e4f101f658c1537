"""bench.folds: the folds of consecutive tracks, the head-only rule, training views and the cross-validation loop.

The loop runs on made-up embeddings with a small softmax head in place of a family's body and head:
what is tested is the folding, the training of the heads with the Trainer's own ``fit_head`` and
the clip scoring, not a family (``python -m bench.folds`` runs those on real clips).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bench import folds
from config.settings import PipelineConfig
from models import metrics, training

GENRES = ("blues", "jazz", "rock")


def test_each_genre_is_cut_into_blocks_of_consecutive_track_numbers():
    tracks = [f"blues.{n:05d}" for n in (9, 0, 3, 12, 5, 7, 1)] + [f"jazz.{n:05d}" for n in (40, 2, 11)]
    assignment = folds.fold_of_tracks(tracks * 2, 3)  # ten segments of a track: the ids repeat
    assert sorted(assignment) == sorted(set(tracks))
    blues = [assignment[f"blues.{n:05d}"] for n in (0, 1, 3, 5, 7, 9, 12)]
    assert blues == [0, 0, 0, 1, 1, 2, 2]  # 7 tracks in number order: blocks of 3, 2, 2
    assert [assignment[f"jazz.{n:05d}"] for n in (2, 11, 40)] == [0, 1, 2]


def test_a_genre_with_fewer_tracks_than_folds_fills_the_first_folds():
    assignment = folds.fold_of_tracks(["pop.00003", "pop.00001"], 5)
    assert assignment == {"pop.00001": 0, "pop.00003": 1}


@pytest.mark.parametrize("setting", ["features.n_mels=64", "train.band_shift=2", "train.epochs=3"])
def test_settings_the_cached_embeddings_cannot_honour_are_refused(setting):
    with pytest.raises(SystemExit, match="compares head settings"):
        folds.parse_try(f"x:{setting}")


def test_fewer_than_two_folds_are_refused(capsys):
    with pytest.raises(SystemExit) as refused:
        folds.main(["--output-dir", "unused", "--model", "musicnn", "--try", "preset", "--folds", "1"])
    error = capsys.readouterr().err
    assert refused.value.code == 2 and "give a whole number of at least 2 (each fold trains on the others)" in error


def test_a_try_is_a_label_and_its_head_settings():
    assert folds.parse_try("preset") == ("preset", [])
    assert folds.parse_try("b:train.class_balance=0.5,train.heads=3") == (
        "b", ["train.class_balance=0.5", "train.heads=3"])
    assert folds.parse_try("views:audio.train_views=device") == ("views", ["audio.train_views=device"])


def test_a_view_the_pipeline_does_not_have_is_refused_before_anything_runs():
    with pytest.raises(SystemExit, match="no view named telephone; the views are clipped, device"):
        folds.parse_try("x:audio.train_views=telephone")


def test_a_try_becomes_the_preset_with_its_settings_views_and_seed():
    preset = PipelineConfig().with_model("musicnn")
    config = folds.config_for(preset, ["audio.train_views=device", "train.heads=3"], 43)
    assert config.audio.train_views == ("device",) and config.train.heads == 3 and config.train.seed == 43
    assert folds.config_for(config, ["audio.train_views=none"], 42).audio.train_views == ()
    assert folds.config_for(preset, [], 44).audio.train_views == preset.audio.train_views


def embedded_clips(separable: bool, clips_per_genre: int = 10, segments: int = 4, width: int = 64) -> folds.Embedded:
    """Segments near their clip's centre. Separable: the centre is the genre's. Otherwise each clip has
    its own random centre, which says nothing of the genre but lets a head that trained on a clip's
    segments recognise that clip."""
    rng = np.random.default_rng(0)
    vectors, labels, tracks = [], [], []
    for g, genre in enumerate(GENRES):
        for n in range(clips_per_genre):
            centre = np.eye(width)[g] * 3.0 if separable else rng.normal(0, 1.0, width)
            vectors += [centre + rng.normal(0, 0.3, width) for _ in range(segments)]
            labels += [np.eye(len(GENRES))[g]] * segments
            tracks += [f"{genre}.{n:05d}"] * segments
    return folds.Embedded(np.array(vectors, np.float32), np.array(labels, np.float32), np.array(tracks, dtype=object),
                          np.zeros(len(tracks), dtype=bool), np.tile(np.arange(segments), len(GENRES) * clips_per_genre))


def with_poisoned_views(embedded: folds.Embedded) -> folds.Embedded:
    """Two views of every segment at its own place but labelled as the next genre: heads that train on
    the views learn the wrong genre for every place, heads that do not are untouched."""
    n = len(embedded.track_ids)
    return folds.Embedded(np.concatenate([embedded.embeddings] * 3),
                          np.concatenate([embedded.labels] + [np.roll(embedded.labels, 1, axis=1)] * 2),
                          np.concatenate([embedded.track_ids] * 3),
                          np.concatenate([embedded.is_view, np.ones(2 * n, dtype=bool)]),
                          np.concatenate([embedded.segment_index + k * folds.VIEW_INDEX_STRIDE for k in range(3)]))


def small_config(views: tuple[str, ...] = (), **train) -> PipelineConfig:
    config = PipelineConfig(genres=GENRES)
    config.audio = dataclasses.replace(config.audio, train_views=views)
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, **{"heads": 1, "epochs": 15, "frozen_epochs": 15, "batch_size": 8, "learning_rate": 0.05,
                         "early_stopping_patience": 5, **train}))


def template_head(width: int = 64) -> keras.Model:
    inputs = keras.Input(shape=(width,))
    return keras.Model(inputs, keras.layers.Dense(len(GENRES), activation="softmax")(inputs))


@pytest.mark.parametrize("class_balance", [0.0, 1.0])
def test_every_clip_is_scored_once_by_heads_that_never_saw_it(class_balance):
    result = folds.cross_validate(small_config(class_balance=class_balance, heads=2), template_head(),
                                  embedded_clips(separable=True), folds=5)
    assert result["clips"] == 30 and result["segments"] == 120
    assert result["per_genre"] == {g: [10, 10] for g in GENRES}  # separable clusters: all right
    assert result["clip_accuracy"] == 1.0 and result["clips_correct"] == 30


def test_clips_whose_embeddings_say_nothing_of_the_genre_score_near_chance(tmp_path):
    """Each clip is recognisable but its genre is not, so only heads that trained on the clips they score
    get them right: the same head fitted on every clip scores it at least 0.9 (so the check can fail)."""
    embedded = embedded_clips(separable=False)
    result = folds.cross_validate(small_config(), template_head(), embedded, folds=5)
    assert result["clips"] == 30 and result["clip_accuracy"] < 0.6

    config = small_config()
    everything = tf.data.Dataset.from_tensor_slices((embedded.embeddings, embedded.labels))
    keras.utils.set_random_seed(config.train.seed)
    head = keras.models.clone_model(template_head())
    training.fit_head(head, everything, everything.batch(8), config, str(tmp_path), 15, config.train.seed, None,
                      progress=False)
    leaked = metrics.score(embedded.track_ids, head.predict(embedded.embeddings, verbose=0),
                           np.argmax(embedded.labels, axis=1))
    assert leaked.clip_accuracy >= 0.9


def test_views_train_the_heads_only_when_asked_and_are_never_scored():
    embedded = with_poisoned_views(embedded_clips(separable=True))
    without = folds.cross_validate(small_config(), template_head(), embedded, folds=5)
    assert without["clips"] == 30 and without["segments"] == 120  # the recorded segments alone are scored
    assert without["clip_accuracy"] == 1.0
    poisoned = folds.cross_validate(small_config(views=("device",)), template_head(), embedded, folds=5)
    assert poisoned["clips"] == 30 and poisoned["segments"] == 120
    assert poisoned["clip_accuracy"] < 0.5  # the views' wrong labels reached the heads


def test_views_asked_of_embeddings_without_views_are_refused():
    with pytest.raises(SystemExit, match="holds none: run the pipeline with --train-views device"):
        folds.cross_validate(small_config(views=("device",)), template_head(), embedded_clips(separable=True), 5)


def held(tracks: list[str], labels: list[int], probabilities: list[list[float]]) -> folds.HeldOut:
    return folds.HeldOut(np.array(tracks, dtype=object), np.array(probabilities), np.array(labels), [1])


def test_late_fusion_averages_the_families_clip_votes_over_the_clips_both_hold():
    """Each family is sure where it is right and unsure where it is wrong, on different clips: alone each
    gets one of the two shared clips, fused both; a clip only one family scored is counted, not scored."""
    musicnn = held(["blues.00001", "blues.00001", "jazz.00002", "rock.00003"], [0, 0, 1, 2],
                   [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    mn04 = held(["blues.00001", "jazz.00002", "jazz.00002"], [0, 1, 1],
                [[0.3, 0.4, 0.3], [0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])
    assert folds.summary(musicnn, GENRES)["per_genre"]["jazz"] == [0, 1]
    assert folds.summary(mn04, GENRES)["per_genre"]["blues"] == [0, 1]
    fused = folds.fuse([musicnn, mn04], GENRES)
    assert fused["clips"] == 2 and fused["clips_left_out"] == 1
    assert fused["clips_correct"] == 2 and fused["clip_accuracy"] == 1.0
    assert fused["per_genre"] == {"blues": [1, 1], "jazz": [1, 1]}


def test_families_that_label_a_clip_differently_are_refused():
    with pytest.raises(SystemExit, match="label clip blues.00001 differently"):
        folds.fuse([held(["blues.00001"], [0], [[1.0, 0, 0]]), held(["blues.00001"], [1], [[1.0, 0, 0]])], GENRES)


def test_a_fusion_partner_is_a_head_family_and_its_pipeline_root(tmp_path):
    assert folds.parse_partner(f"efficientat={tmp_path}") == ("efficientat", tmp_path.resolve())
    with pytest.raises(SystemExit, match="give MODEL=DIR"):
        folds.parse_partner("cnn=/tmp/x")
    with pytest.raises(SystemExit, match="give MODEL=DIR"):
        folds.parse_partner("efficientat")


def test_every_family_is_held_out_on_one_shared_assignment():
    """Fusion scores a clip with heads that never saw it in either family: the folds come from one assignment."""
    embedded = embedded_clips(separable=True)
    assignment = folds.fold_of_tracks(list(embedded.track_ids) + ["blues.00099"], 5)
    scored = folds.held_out(small_config(), template_head(), embedded, assignment)
    assert len(set(scored.track_ids)) == 30 and folds.summary(scored, GENRES)["clip_accuracy"] == 1.0


def test_one_head_on_both_bodies_sees_each_shared_segment_with_both_embeddings():
    """The first family sees only what marks blues, the second only what marks jazz: alone each confuses two
    genres, one head on both embeddings side by side tells all three apart."""
    full = embedded_clips(separable=True, width=6)
    first = dataclasses.replace(full, embeddings=full.embeddings[:, [0, 3]])
    second = dataclasses.replace(full, embeddings=full.embeddings[:, [1, 4, 5]])
    second = dataclasses.replace(second, **{f.name: getattr(second, f.name)[:-4] for f in dataclasses.fields(second)})
    joined = folds.side_by_side(first, second)
    assert folds.cross_validate(small_config(), template_head(width=2), first, folds=5)["clip_accuracy"] < 0.9
    assert joined.embeddings.shape == (116, 5) and "rock.00009" not in set(joined.track_ids)  # its segments: one side
    row = list(first.track_ids).index("jazz.00003") + 2
    np.testing.assert_array_equal(joined.embeddings[row], np.concatenate([first.embeddings[row], second.embeddings[row]]))
    head = folds.widened(template_head(width=2), 5)
    assert head.input_shape == (None, 5) and [type(layer) for layer in head.layers] == [
        type(layer) for layer in template_head(width=2).layers]
    result = folds.cross_validate(small_config(), head, joined, folds=5)
    assert result["clips"] == 29 and result["clip_accuracy"] == 1.0


def test_families_with_no_segment_in_common_are_refused():
    clips = embedded_clips(separable=True)
    other = dataclasses.replace(clips, segment_index=clips.segment_index + 100)
    with pytest.raises(SystemExit, match="share no segment"):
        folds.side_by_side(clips, other)


@pytest.mark.parametrize("stop_on", folds.STOP_ON)
def test_the_held_out_block_stops_the_heads_only_when_asked(stop_on, monkeypatch):
    """Per fold, the tracks the heads train on and the tracks whose loss stops them: with ``inner`` the stopping
    block is another kept block, trained on by no head, and never the held-out one."""
    embedded = embedded_clips(separable=True)
    track_of = {row.tobytes(): track for row, track in zip(embedded.embeddings, embedded.track_ids)}
    seen: list[tuple[set, set]] = []

    def tracks(dataset) -> set:
        return {track_of[row.tobytes()] for x, _ in dataset.unbatch() for row in [x.numpy()]}

    def recording_fit_head(head, train, stop_set, *args, **kwargs):
        seen.append((tracks(train.batch(64)), tracks(stop_set)))
        return {"loss": [1.0]}

    monkeypatch.setattr(training, "fit_head", recording_fit_head)
    assignment = folds.fold_of_tracks(embedded.track_ids, 5)
    folds.held_out(small_config(), template_head(), embedded, assignment, stop_on)
    blocks = sorted(set(assignment.values()))
    assert len(seen) == len(blocks)
    for k, (trained, stopped_by) in zip(blocks, seen):
        held = {t for t, b in assignment.items() if b == k}
        assert not trained & held and not trained & stopped_by
        assert (stopped_by == held) == (stop_on == "held-out")
        assert stop_on == "held-out" or not stopped_by & held and stopped_by
