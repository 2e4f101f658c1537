"""musicnn's MSD_vgg in Keras: every pretrained tensor loaded, and the same activations as musicnn's own TF1 graph."""

import numpy as np
import pytest
import tf_keras as keras

from config.settings import GENRES, PipelineConfig, TrainConfig
from models import registry, vgg
from models.musicnn_weights import read_checkpoint
from tests.testkit.model_checks import (
    assert_checkpoint_loaded, log_mel_like, loss_before_after, musicnn_tf1_outputs, rhythmic_batch)

SHAPE = (vgg.FRAMES, vgg.MELS)
POOLS = [f"{vgg.BACKBONE_PREFIX}block{i}_pool" for i in range(1, 6)]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return vgg.build_vgg(SHAPE, len(GENRES), TrainConfig())


@pytest.fixture(scope="module")
def tensors() -> dict:
    return read_checkpoint("MSD_vgg")



def test_preset_shape_and_contract(model):
    features = PipelineConfig().with_model("vgg").features
    assert (features.frames, features.n_mels) == SHAPE
    assert model.input_names == ["log_mel"]
    assert model.input_shape == (None, *SHAPE)
    assert model.output_shape == (None, len(GENRES))
    assert model.get_layer(vgg.POOLED_FEATURES).output_shape == (None, 2, 1, 128)
    assert model.get_layer("head_flatten").output_shape == (None, 256)
    assert model.count_params() == 596_750  # body 594,180 + head 2,570
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [0.25, 0.25, 0.25, 0.25, 0.5]


def test_every_checkpoint_tensor_is_loaded_unchanged(model, tensors):
    body = {key for key in tensors if not key.startswith("dense/")}
    assert len(body) == 6 * 4 + 5 * 2  # six batch norms, five convolutions
    assert assert_checkpoint_loaded(model, vgg.checkpoint_scopes(), tensors) == body


def test_backbone_reproduces_musicnn_tf1_graph(model, tmp_path):
    x = log_mel_like(3, SHAPE, seed=1)
    expected = musicnn_tf1_outputs("MSD_vgg", x, tmp_path)[1:6]  # logits, then pool1..pool5
    pools = keras.Model(model.input, [model.get_layer(name).output for name in POOLS])
    got = pools.predict(x, verbose=0)
    for i, (want, have) in enumerate(zip(expected, got), start=1):
        assert want.shape == have.shape, (i, want.shape, have.shape)
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4, err_msg=f"pool{i}")
    assert np.abs(expected[-1]).max() > 0.1  # the comparison is over non-trivial activations


def test_input_stats_undo_the_transform_zscore(model):
    raw = log_mel_like(2, SHAPE, seed=2)
    mean, std = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1)) + 0.1
    with_stats = vgg.build_vgg(SHAPE, len(GENRES), TrainConfig(), input_stats=(mean, std))
    assert with_stats.count_params() == model.count_params()  # mean and std are constants, not weights
    pooled = [keras.Model(m.input, m.get_layer(vgg.POOLED_FEATURES).output) for m in (model, with_stats)]
    want = pooled[0].predict(raw, verbose=0)
    got = pooled[1].predict((raw - mean) / std, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(pooled[0].predict((raw - mean) / std, verbose=0), want, atol=1e-2)


def test_rejects_other_input_shapes():
    with pytest.raises(ValueError, match="187, 96"):
        vgg.build_vgg((130, 128), len(GENRES), TrainConfig(), pretrained=False)


def test_freeze_and_unfreeze_backbone():
    model = vgg.build_vgg(SHAPE, len(GENRES), TrainConfig(), pretrained=False)
    head = len(model.get_layer("probabilities").trainable_weights)
    registry.set_backbone_trainable(model, False)
    assert len(model.trainable_weights) == head
    registry.set_backbone_trainable(model, True)
    assert len(model.trainable_weights) == head + 5 * 2  # conv kernels and biases; BN stays frozen
    assert not model.get_layer(vgg.INPUT_BN).trainable
    registry.set_backbone_trainable(model, True, train_batch_norm=True)
    assert len(model.trainable_weights) == head + 5 * 2 + 6 * 2


def test_frozen_body_head_learns_and_body_is_untouched(tensors):
    keras.utils.set_random_seed(0)
    model = vgg.build_vgg(SHAPE, len(GENRES), TrainConfig())
    registry.set_backbone_trainable(model, False)
    x, y = rhythmic_batch(40, *SHAPE, len(GENRES))
    before, after = loss_before_after(model, x, y, epochs=6, batch_size=10)
    wrong = float(model.evaluate(x, np.roll(y, 1), verbose=0))  # same inputs, other labels
    assert after < 0.8 * before, (before, after)
    assert after < wrong - 0.25, (after, wrong)  # it learned the mapping, not just the class prior
    np.testing.assert_array_equal(model.get_layer(f"{vgg.BACKBONE_PREFIX}block2_conv").kernel.numpy(),
                                  tensors["2CNN/kernel"])
    np.testing.assert_array_equal(model.get_layer(f"{vgg.BACKBONE_PREFIX}block2_bn").moving_mean.numpy(),
                                  tensors["batch_normalization_2/moving_mean"])
