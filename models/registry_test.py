"""The registry: one builder per configured family, inputs named by feature kind, two-phase hooks."""
import dataclasses
import warnings

import numpy as np
import pytest
import tf_keras as keras

from models import blocks, efficientat_family, efficientnet, features, registry, vgg
from pipeline.config import GENRES, MODEL_TYPES, PipelineConfig


def _shape(config: PipelineConfig) -> tuple[int, int]:
    """(frames, bins) the feature module produces for this preset's segments."""
    return features.output_shape(config.features, config.audio.segment_samples)


def test_every_configured_family_has_a_builder():
    assert set(registry.BUILDERS) == set(MODEL_TYPES)


@pytest.fixture
def no_imagenet_weights(monkeypatch):
    """EfficientNet decides like a machine without the ImageNet download, wherever the test runs; efficientat
    keeps mn04's random weights (no release file needed)."""
    monkeypatch.setattr(efficientnet, "weights_source", lambda path: path)
    monkeypatch.setattr(efficientat_family, "load_pretrained", lambda mn04, train: None)


@pytest.mark.parametrize("family", MODEL_TYPES)
def test_build_model_follows_the_preset(family, no_imagenet_weights):
    config = PipelineConfig().with_model(family)
    shape = _shape(config)
    stats = (np.zeros(shape[1], "f"), np.ones(shape[1], "f"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stats silence the VGG warning; others ignore them
        model = registry.build_model(config, shape, input_stats=stats)
    assert model.name == family
    assert model.input_names == [config.features.kind]
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, len(GENRES))
    assert model.optimizer is None  # uncompiled: the trainer compiles
    musicnn = family in ("vgg", "lstm", "musicnn")  # a musicnn checkpoint: MSD_vgg (the VGG) or MSD_musicnn
    # EfficientNet: not without weights; efficientat always (mn04_as), its input never z-scored
    assert registry.has_pretrained_backbone(config) == (musicnn or family == "efficientat")
    assert registry.needs_input_stats(config) == musicnn
    assert (blocks.UNDO_ZSCORE in [layer.name for layer in model.layers]) == musicnn


def test_head_width_follows_the_configured_label_set():
    config = dataclasses.replace(PipelineConfig().with_model("cnn"), genres=("ambient", "drill", "polka"))
    assert registry.build_model(config, _shape(config)).output_shape == (None, 3)


def test_vgg_without_input_stats_warns():
    config = PipelineConfig().with_model("vgg")
    with pytest.warns(UserWarning, match="z-scores"):
        model = registry.build_model(config, _shape(config))
    assert blocks.UNDO_ZSCORE not in [layer.name for layer in model.layers]


def test_set_backbone_trainable_on_vgg_and_refused_elsewhere():
    config = PipelineConfig().with_model("vgg")
    model = registry.build_model(config, _shape(config), input_stats=(np.zeros(96, "f"), np.ones(96, "f")))
    registry.set_backbone_trainable(model, False)
    assert not any(layer.trainable for layer in vgg.backbone_layers(model))
    assert model.get_layer("probabilities").trainable
    registry.set_backbone_trainable(model, True)
    assert model.get_layer(f"{vgg.BACKBONE_PREFIX}block1_conv").trainable
    cnn = registry.build_model(PipelineConfig().with_model("cnn"), (130, 128))
    with pytest.raises(ValueError, match="no pretrained backbone"):
        registry.set_backbone_trainable(cnn, False)


def test_unknown_family_is_refused():
    config = PipelineConfig()
    config.train = dataclasses.replace(config.train, model="resnet")
    with pytest.raises(ValueError, match="Unknown model 'resnet'"):
        registry.build_model(config, (130, 128))
    assert isinstance(registry.build_model(PipelineConfig(), (130, 128)), keras.Model)


# EfficientNet's round trip takes 13 s on an idle machine (save and Keras reload, `make bench-export`);
# tests/test_model_families_e2e.py exports and reloads it anyway.
@pytest.mark.parametrize("family", [f for f in MODEL_TYPES if f != "efficientnet"])
def test_saved_model_round_trip(family, tmp_path, no_imagenet_weights):
    """Only stock layers: saved as models/signatures.export saves it (no traced call functions), the model
    reloads from its layers' configs without custom objects and predicts the same."""
    config = PipelineConfig().with_model(family)
    shape = _shape(config)
    model = registry.build_model(config, shape, input_stats=(np.full(shape[1], 2.0, "f"), np.full(shape[1], 1.5, "f")))
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype("f")
    model.save(tmp_path / "model", save_format="tf", save_traces=False)
    reloaded = keras.models.load_model(tmp_path / "model", compile=False)
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-6)
