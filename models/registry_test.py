"""The registry: one builder per configured family, inputs named by feature kind, two-phase hooks."""
import dataclasses
import warnings

import numpy as np
import pytest
import tf_keras as keras

from config.settings import GENRES, MODEL_TYPES, PipelineConfig
from models import blocks, efficientat_family, efficientnet, features, registry, transfer, vgg


def _shape(config: PipelineConfig):
    """(frames, bins) the feature module produces for this preset's segments; one per input kind for a family
    of several inputs."""
    shapes = features.output_shapes(config.features, config.audio.segment_samples, config.audio.sample_rate)
    return features.as_model_input(shapes, config.features)


def _bins(config: PipelineConfig) -> int:
    """Bins of ``features.kind``, the input Transform's z-score statistics describe."""
    return features.output_shapes(config.features, config.audio.segment_samples,
                                  config.audio.sample_rate)[config.features.kind][1]


def _inputs(config: PipelineConfig, seed: int):
    """A batch of two random model inputs (a dict by kind for a family of several)."""
    rng = np.random.default_rng(seed)
    shapes = features.output_shapes(config.features, config.audio.segment_samples, config.audio.sample_rate)
    return features.as_model_input({k: rng.standard_normal((2, *s)).astype("f") for k, s in shapes.items()},
                                   config.features)


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
    stats = (np.zeros(_bins(config), "f"), np.ones(_bins(config), "f"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stats silence the VGG warning; others ignore them
        model = registry.build_model(config, shape, input_stats=stats)
    assert model.name == family
    assert sorted(model.input_names) == sorted(features.model_inputs(config.features))
    if isinstance(shape, dict):
        assert {name: model.get_layer(name).output_shape[0] for name in shape} == {
            name: (None, *s) for name, s in shape.items()}
    else:
        assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, len(GENRES))
    assert model.optimizer is None  # uncompiled: the trainer compiles
    # A musicnn checkpoint: MSD_vgg (the VGG) or MSD_musicnn (beside mn04 in musicnn_efficientat)
    musicnn = family in ("vgg", "lstm", "musicnn", "musicnn_efficientat")
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
    assert not any(layer.trainable for layer in transfer.backbone_layers(model))
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
    bins = _bins(config)
    model = registry.build_model(config, _shape(config), input_stats=(np.full(bins, 2.0, "f"), np.full(bins, 1.5, "f")))
    x = _inputs(config, 0)
    model.save(tmp_path / "model", save_format="tf", save_traces=False)
    reloaded = keras.models.load_model(tmp_path / "model", compile=False)
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-6)
