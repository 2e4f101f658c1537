"""The dense network on summary statistics: contract shapes and names, and that it learns a toy task."""
import numpy as np
import pytest
import tf_keras as keras

from config.settings import GENRES, PipelineConfig, TrainConfig
from models import features
from models.ann import build_ann
from tests.testkit.model_checks import loss_before_after, separable_batch

PRESET = PipelineConfig().with_model("ann")
SHAPE = features.output_shape(PRESET.features, PRESET.audio.segment_samples)  # (1, 74)


def test_preset_feeds_it_summary_statistics_without_spectrogram_augmentation():
    assert PRESET.features.kind == "summary" and SHAPE == (1, 74)
    assert not PRESET.train.spec_augment and PRESET.train.random_gain_db == 0.0


def test_contract_shapes_names_and_size():
    model = build_ann(SHAPE, len(GENRES), TrainConfig())
    assert model.input_names == ["summary"]
    assert model.input_shape == (None, *SHAPE)
    assert model.output_shape == (None, len(GENRES))
    assert model.layers[-1].name == "probabilities"
    assert len(model.losses) == 3  # L2 on both hidden layers and the head
    probs = model.predict(np.random.default_rng(0).standard_normal((3, *SHAPE)).astype("f"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_rejects_an_unknown_row_count():
    with pytest.raises(ValueError, match="row count"):
        build_ann((None, 74), len(GENRES), TrainConfig())


def test_learns_separable_toy_task():
    keras.utils.set_random_seed(0)
    x, y = separable_batch(160, *SHAPE, len(GENRES), shift=2.0)
    model = build_ann(SHAPE, len(GENRES), TrainConfig())
    before, after = loss_before_after(model, x, y, epochs=10)
    assert after < 0.25 * before, (before, after)
