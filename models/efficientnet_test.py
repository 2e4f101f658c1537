"""EfficientNetB0 on the log-mel: weights from a file (two-phase training) or random initialisation
(one phase), the 3-channel input, and the body/head split. Small inputs (64 x 64, pooled to 32 x 32) keep it cheap;
the preset's 130 x 128 trains in tests/test_model_families_e2e.py."""
from __future__ import annotations

import argparse
import dataclasses

import mlflow
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from config.errors import UserError
from config.settings import GENRES, PipelineConfig
from models import efficientnet, registry, training
from pipeline.flags import add_cli_arguments, config_from_args

SHAPE = (64, 64)
IMAGE = (SHAPE[0] // efficientnet.INPUT_POOL[0], SHAPE[1] // efficientnet.INPUT_POOL[1])


@pytest.fixture(autouse=True)
def fresh_weights_decision():
    efficientnet.weights_source.cache_clear()
    yield
    efficientnet.weights_source.cache_clear()


@pytest.fixture
def offline(monkeypatch):
    """A machine that cannot fetch Keras' ImageNet weights (whatever this one can do)."""
    def refuse(*args, **kwargs):
        raise Exception("URL fetch failure: no network")
    monkeypatch.setattr(efficientnet.keras.utils, "get_file", refuse)


def _config(**train) -> PipelineConfig:
    config = PipelineConfig().with_model("efficientnet")
    config.train = dataclasses.replace(config.train, **train)
    return config


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    """A Keras weights file of a randomly initialised EfficientNetB0 body, as --backbone-weights takes."""
    keras.utils.set_random_seed(7)
    path = str(tmp_path_factory.mktemp("weights") / "efficientnetb0_notop.h5")
    keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(*IMAGE, 3)).save_weights(path)
    return path


def test_preset_is_the_cnn_log_mel_as_is():
    config = PipelineConfig().with_model("efficientnet")
    assert config.features == PipelineConfig().with_model("cnn").features
    assert config.audio.sample_rate == 22050


def test_offline_without_weights_is_random_init_in_one_phase(offline, capsys):
    config = _config()
    assert not registry.has_pretrained_backbone(config)
    assert not registry.needs_input_stats(config)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[train]")]
    assert len(lines) == 1 and "random initialisation" in lines[0] and "whole network" in lines[0], lines
    model = registry.build_model(config, SHAPE)
    assert capsys.readouterr().out == ""  # decided once per process: no second line
    assert model.name == "efficientnet" and model.input_names == ["log_mel"]
    assert model.output_shape == (None, len(GENRES))
    assert all(layer.trainable for layer in model.get_layer(efficientnet.BACKBONE).layers)


def test_input_becomes_three_equal_channels_of_pooled_pixels():
    model = efficientnet.build_efficientnet(SHAPE, len(GENRES), _config().train, weights=None)
    rgb = keras.Model(model.input, model.get_layer("to_rgb").output)
    z = np.random.default_rng(0).standard_normal((2, *SHAPE)).astype("f")
    pixels = rgb(z).numpy()
    assert pixels.shape == (2, *IMAGE, 3)
    (pf, pb) = efficientnet.INPUT_POOL
    pooled = z.reshape(2, IMAGE[0], pf, IMAGE[1], pb).mean(axis=(2, 4))
    np.testing.assert_allclose(pixels[..., 0], 127.5 + 127.5 * pooled / efficientnet.Z_RANGE, atol=1e-3)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_split_backbone_composes_to_the_model():
    model = efficientnet.build_efficientnet(SHAPE, len(GENRES), _config().train, weights=None)
    body, head = registry.split_backbone(model)
    x = np.random.default_rng(1).standard_normal((3, *SHAPE)).astype("f")
    assert body.output_shape == (None, 1280)
    np.testing.assert_allclose(head(body(x, training=False), training=False).numpy(),
                               model(x, training=False).numpy(), atol=1e-5)


def test_backbone_weights_file_is_loaded_and_trains_in_two_phases(weights_file, offline, tmp_path, capsys):
    # One epoch, all of it the head's: the two-phase path's first phase (the second, fine-tuning, is
    # the VGG's code path, models/training_test.py; its freezing rule is tested below).
    config = _config(backbone_weights=weights_file, epochs=1, frozen_epochs=1, batch_size=8)
    assert registry.has_pretrained_backbone(config)
    assert "--backbone-weights" in capsys.readouterr().out
    model = registry.build_model(config, SHAPE)
    saved = keras.applications.EfficientNetB0(include_top=False, weights=weights_file, input_shape=(*IMAGE, 3))
    body = model.get_layer(efficientnet.BACKBONE)
    for name in ("stem_conv", "block1a_dwconv", "top_conv"):
        np.testing.assert_array_equal(body.get_layer(name).get_weights()[0], saved.get_layer(name).get_weights()[0])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, *SHAPE)).astype("f")
    y = tf.one_hot(np.arange(16) % len(GENRES), len(GENRES))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run():
        _, history = training.fit(model, ds, ds, config, str(tmp_path), probe_train_ds=ds)
    out = capsys.readouterr().out
    assert "head: 1 epochs on the frozen body's embeddings; no fine-tuning (--epochs 1 <= --frozen-epochs 1" in out, out
    assert len(history["loss"]) == 1
    np.testing.assert_array_equal(body.get_layer("stem_conv").get_weights()[0],
                                  saved.get_layer("stem_conv").get_weights()[0])  # the head alone trained


def test_set_backbone_trainable_freezes_the_body_and_unfreezes_all_but_batch_norm():
    model = efficientnet.build_efficientnet(SHAPE, len(GENRES), _config().train, weights=None)
    body = model.get_layer(efficientnet.BACKBONE)
    registry.set_backbone_trainable(model, False)
    assert not body.trainable and model.get_layer("probabilities").trainable
    assert model.count_params() - sum(int(np.prod(w.shape)) for w in model.trainable_weights) > 4_000_000
    registry.set_backbone_trainable(model, True)
    batch_norms = [layer for layer in body.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norms) == 49 and not any(layer.trainable for layer in batch_norms)
    assert body.get_layer("stem_conv").trainable and body.get_layer("block7a_project_conv").trainable


def test_refuses_inputs_too_small_for_the_body():
    with pytest.raises(ValueError, match="at least"):
        efficientnet.build_efficientnet((SHAPE[0] - 1, SHAPE[1]), len(GENRES), _config().train, weights=None)


def test_missing_weights_file_is_a_user_error_naming_the_flag(tmp_path):
    with pytest.raises(UserError, match="--backbone-weights"):
        efficientnet.weights_source(str(tmp_path / "missing.h5"))
    parser = add_cli_arguments(argparse.ArgumentParser())
    with pytest.raises(SystemExit, match="no such file"):
        config_from_args(parser.parse_args(["--model", "efficientnet", "--backbone-weights",
                                            str(tmp_path / "missing.h5")]))
