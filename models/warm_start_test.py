"""models/warm_start.py: a champion's weights saved beside its model and loaded into a rebuilt model of the same
family; every mismatch a cold start with its reason."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import tf_keras as keras

from components import model_tracks
from config.settings import GENRES
from models import registry, warm_start
from tests.testkit.training_inputs import train_config

SHAPE = (1, 74)  # the ann's summary statistics: a small family to save and load
TRACKS = {model_tracks.IDENTITY_KEY: model_tracks.IDENTITY, "train": ["blues/a", "rock/b"], "eval": ["blues/c"],
          "test": ["rock/d"]}


def built(config, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return registry.build_model(config, SHAPE)


def write_tracks(model_dir, tracks) -> None:
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, model_tracks.TRACKS_FILE), "w") as f:
        json.dump(tracks, f)


@pytest.fixture
def champion(tmp_path):
    """(config, folder, model) of a saved ann champion, and this run's Model folder holding its track lists."""
    config = train_config("ann", warm_start_epochs=3)
    model = built(config, seed=1)
    folder = str(tmp_path / "Trainer" / "model" / "7")
    warm_start.save(model, config, warm_start.Start(reason="no champion yet"), folder)
    write_tracks(folder, TRACKS)
    write_tracks(tmp_path / "run", {**TRACKS, "train": TRACKS["train"] + ["jazz/e"], "eval": ["blues/c", "jazz/f"]})
    return config, folder, model


def decide(config, champion_folder, tmp_path) -> warm_start.Start:
    """As run_fn asks: TFX's base model path is the champion's serving folder."""
    return warm_start.decide(config, os.path.join(champion_folder, "Format-Serving"), str(tmp_path / "run"))


def test_the_champions_weights_load_into_a_rebuilt_model_with_the_warm_budget(champion, tmp_path):
    config, folder, trained = champion
    start = decide(config, folder, tmp_path)
    assert start == warm_start.Start(epochs=3, base=folder)
    assert start.describe() == f"warm start from the champion ({folder}): up to 3 epochs"
    rebuilt = built(config, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(rebuilt.get_weights(), trained.get_weights()))
    loaded_start, model, extra_heads = warm_start.load(rebuilt, config, start)
    assert (loaded_start, model, extra_heads) == (start, rebuilt, [])
    for mine, theirs in zip(model.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert warm_start.with_budget(config, start).train.epochs == 3  # the ann's preset is 100
    assert warm_start.with_budget(dataclasses.replace(config, train=dataclasses.replace(
        config.train, epochs=2)), start).train.epochs == 3  # the budget decide() computed: min(epochs, N)
    assert warm_start.recorded(folder) == warm_start.Start(reason="no champion yet")  # how the champion began


OTHER = "the champion is a ann model of 10 genres, not of this run's family, label set and input"


@pytest.mark.parametrize("change, reason", [
    (lambda c: dataclasses.replace(c, train=dataclasses.replace(c.train, warm_start_epochs=0)),
     "warm start is off (--warm-start-epochs 0)"),
    (lambda c: dataclasses.replace(c, genres=GENRES[:8]), OTHER),
    (lambda c: dataclasses.replace(c, genres=GENRES[::-1]), OTHER),
    (lambda c: dataclasses.replace(c, audio=dataclasses.replace(c.audio, segment_seconds=2.0)), OTHER),
    (lambda c: dataclasses.replace(c, features=dataclasses.replace(c.features, n_fft=1024)), OTHER),
    (lambda c: c.with_model("cnn"), OTHER),
])
def test_a_mismatch_starts_cold_and_says_why(champion, tmp_path, change, reason):
    """Another family, label set or input changes the key the base model's resolver matches, so no such champion
    reaches a run; one that does (not through the resolver) is refused all the same."""
    config, folder, _ = champion
    changed = change(config)
    off = changed.train.warm_start_epochs == 0
    assert (warm_start.fit_key(changed) == warm_start.fit_key(config)) is off  # the key moves with the rest
    start = decide(changed, folder, tmp_path)
    assert start == warm_start.Start(reason=reason)
    assert start.describe() == f"cold start: {reason}"
    model = built(config, seed=2)
    before = model.get_weights()
    assert warm_start.load(model, config, start) == (start, model, [])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    assert warm_start.with_budget(config, start) is config


def test_no_champion_or_one_without_weights_starts_cold(tmp_path):
    cnn = train_config("cnn")
    assert warm_start.decide(cnn, None, str(tmp_path / "run")).reason == (
        "no champion yet (no blessed cnn model of this label set and input trained on other examples)")
    unsaved = tmp_path / "Trainer" / "model" / "3"
    unsaved.mkdir(parents=True)
    assert decide(cnn, str(unsaved), tmp_path).reason == f"the champion ({unsaved}) saved no weights for a warm start"


def test_a_champion_that_saw_this_runs_held_out_tracks_starts_cold(champion, tmp_path):
    """A split that moved (a small library's quota split after tracks were added): the champion's train track is
    now an eval track, and its weights would carry it into the eval score."""
    config, folder, _ = champion
    write_tracks(tmp_path / "run", {**TRACKS, "train": ["blues/c"], "eval": ["rock/b"]})
    assert decide(config, folder, tmp_path).reason == (
        "the champion has seen 1 of this run's eval and test tracks (rock/b, ...; the split moved): its weights would "
        "carry them into the held-out scores")
    write_tracks(tmp_path / "run", {**TRACKS, "train": ["rock/d"], "test": ["blues/c"]})  # its eval track: now test
    assert decide(config, folder, tmp_path).reason.startswith("the champion has seen 1 of this run's")
    os.remove(os.path.join(folder, model_tracks.TRACKS_FILE))
    assert "is unknown (no comparable track lists)" in decide(config, folder, tmp_path).reason


def test_weights_that_do_not_fit_the_layers_start_cold(champion, tmp_path):
    """The same family and input, other layers (its code changed): the model keeps its own weights."""
    config, folder, _ = champion
    other = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(len(GENRES))])
    warm_start.save(other, config, warm_start.Start(reason="x"), folder)
    start = decide(config, folder, tmp_path)
    assert start.epochs == 3
    model = built(config, seed=2)
    before = model.get_weights()
    cold, returned, extra_heads = warm_start.load(model, config, start)
    assert cold.epochs == 0 and cold.reason.startswith("the champion's weights do not fit this run's layers (")
    assert returned is model and extra_heads == []
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


@pytest.mark.parametrize("fine_tunes", [False, True])
def test_averaged_heads_load_head_by_head(tmp_path, fine_tunes):
    """musicnn with 3 averaged heads (random body, pretrained=False: the test is the wiring). Heads alone: every
    head starts from the champion's, the body stays the pretrained one (the stored embeddings are its). Fine-tuning:
    the champion's whole averaged model, fine-tuned at once (no head phase)."""
    from models import musicnn, transfer
    config = train_config("musicnn", heads=3, warm_start_epochs=2,
                          **({"epochs": 30, "frozen_epochs": 20} if fine_tunes else {}))
    shape = (musicnn.FRAMES, musicnn.MELS)

    def build(seed):
        keras.utils.set_random_seed(seed)
        return musicnn.build_musicnn(shape, len(GENRES), config.train, pretrained=False)

    trained = build(1)
    body, head = registry.split_backbone(trained)
    averaged = transfer.average_heads(trained, body, [head, *(keras.models.clone_model(head) for _ in range(2))])
    folder = str(tmp_path / "champion")
    warm_start.save(averaged, config, warm_start.Start(reason="x"), folder)
    write_tracks(folder, TRACKS)
    write_tracks(tmp_path / "run", TRACKS)
    start = decide(config, folder, tmp_path)
    assert start.epochs == 2

    model = build(2)
    own_body = registry.split_backbone(model)[0].get_weights()
    _, to_train, extra_heads = warm_start.load(model, config, start)
    champion_heads = [averaged.get_layer(f"head_{i}").get_weights() for i in (1, 2, 3)]
    budget = warm_start.with_budget(config, start).train
    if fine_tunes:
        assert to_train is not model and to_train.name == "musicnn" and extra_heads == []
        for mine, theirs in zip(to_train.get_weights(), averaged.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
        assert (budget.epochs, budget.frozen_epochs) == (2, 0)
    else:
        assert to_train is model and len(extra_heads) == 2
        for mine, theirs in zip(registry.split_backbone(model)[0].get_weights(), own_body):
            np.testing.assert_array_equal(mine, theirs)
        for mine, theirs in zip([registry.split_backbone(model)[1].get_weights(), *extra_heads], champion_heads):
            assert len(mine) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(mine, theirs))
        assert (budget.epochs, budget.frozen_epochs) == (2, config.train.frozen_epochs)
    config_two_heads = dataclasses.replace(config, train=dataclasses.replace(config.train, heads=2))
    assert decide(config_two_heads, folder, tmp_path).reason == (
        "the champion averages 3 heads, this run trains 2")
