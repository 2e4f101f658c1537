"""The efficientat family: shapes, a frozen mn04 body, the cut at its 384-d embedding, and its weights' errors.

Random weights here (``pretrained=False``), so CI needs no file; the release weights' parity is
models/efficientat/network_test.py's, and a training run on them is tests/test_mn04_families_e2e.py's.
"""
import argparse
import dataclasses

import numpy as np
import pytest
import tf_keras as keras

from config.errors import UserError
from config.settings import GENRES, PipelineConfig, TrainConfig
from models import efficientat_family as family
from models import features, registry
from pipeline.flags import add_cli_arguments, config_from_args

CONFIG = PipelineConfig().with_model("efficientat")
SHAPE = features.output_shape(CONFIG.features, CONFIG.audio.segment_samples)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return family.build_efficientat(SHAPE, len(GENRES), CONFIG.train, pretrained=False)


def test_the_preset_is_mn04s_input_and_the_head_alone():
    assert (CONFIG.audio.sample_rate, CONFIG.features.kind, SHAPE) == (32000, "kaldi_log_mel", (300, 128))
    assert CONFIG.train.epochs == CONFIG.train.frozen_epochs and CONFIG.audio.train_views == ("device",)
    assert registry.has_pretrained_backbone(CONFIG) and not registry.needs_input_stats(CONFIG)
    assert not features.is_zscored(CONFIG.features.kind)


def test_shapes_and_a_frozen_body(model):
    assert model.name == "efficientat" and model.input_names == ["kaldi_log_mel"]
    assert model.input_shape == (None, 300, 128) and model.output_shape == (None, len(GENRES))
    body = model.get_layer(family.BODY)
    assert not body.trainable and body.count_params() == 525_968  # mn04 without its classifier (0.99 M with it)
    head = {w.name.split("/")[0] for w in model.trainable_weights}
    assert head == {"head_bn", "probabilities"}
    out = model(np.random.default_rng(0).normal(size=(2, *SHAPE)).astype("f"), training=False).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_any_number_of_frames_but_only_128_bands():
    assert family.build_efficientat((None, 128), 3, TrainConfig(), pretrained=False).input_shape == (None, None, 128)
    with pytest.raises(ValueError, match="128 Kaldi mel bands"):
        family.build_efficientat((300, 96), 3, TrainConfig(), pretrained=False)


def test_split_backbone_cuts_at_the_384_d_embedding(model):
    body, head = registry.split_backbone(model)
    assert body.output_shape == (None, 384) and head.input_shape == (None, 384)
    x = np.random.default_rng(1).normal(size=(3, *SHAPE)).astype("f")
    np.testing.assert_allclose(head(body(x, training=False), training=False).numpy(),
                               model(x, training=False).numpy(), atol=1e-6)


def test_set_backbone_trainable_unfreezes_all_but_batch_norm(model):
    registry.set_backbone_trainable(model, True)
    try:
        body = model.get_layer(family.BODY)
        assert body.trainable
        norms = [layer for layer in body.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert norms and not any(layer.trainable for layer in norms)
        assert any(layer.trainable for layer in body.layers if isinstance(layer, keras.layers.Conv2D))
    finally:
        registry.set_backbone_trainable(model, False)
    assert not model.get_layer(family.BODY).trainable


def test_a_missing_weights_file_is_one_paragraph_naming_the_flag(tmp_path):
    train = dataclasses.replace(CONFIG.train, efficientat_weights=str(tmp_path / "mn04.pt"))
    with pytest.raises(UserError, match="does not exist") as error:
        family.build_efficientat(SHAPE, len(GENRES), train)
    assert "--efficientat-weights" in error.value.paragraph()


def test_only_stock_layers(model):
    """TFMA's Evaluator loads the export with Keras, in a process that may never import models.efficientat: a
    custom layer would not load there (registry_test's round trip saves and reloads the family)."""
    layers = model.get_layer(family.BODY).layers + model.layers
    assert [layer.name for layer in layers if not type(layer).__module__.startswith("tf_keras")] == []


def test_the_flag_is_checked_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("GENRE_EFFICIENTAT_WEIGHTS", raising=False)
    parser = add_cli_arguments(argparse.ArgumentParser())
    missing = str(tmp_path / "mn04_as_mAP_432.pt")
    with pytest.raises(SystemExit, match="does not exist") as error:
        config_from_args(parser.parse_args(["--model", "efficientat", "--efficientat-weights", missing]))
    assert "--efficientat-weights" in str(error.value) and "sha256" in str(error.value)  # names the flag and the fix
    monkeypatch.setenv("GENRE_EFFICIENTAT_WEIGHTS", missing)  # the environment is checked the same way
    with pytest.raises(SystemExit, match="GENRE_EFFICIENTAT_WEIGHTS"):
        config_from_args(parser.parse_args(["--model", "efficientat"]))
    other = config_from_args(parser.parse_args(["--model", "musicnn", "--efficientat-weights", missing]))
    assert other.train.efficientat_weights is None  # read by the efficientat family only
    image_path = ["--model", "efficientat", "--efficientat-weights", "/image/mn04.pt"]
    kubeflow = config_from_args(parser.parse_args(image_path), on_this_machine=False)
    assert kubeflow.train.efficientat_weights == "/image/mn04.pt"  # checked where the Trainer runs
