"""The from-scratch CNN: contract shapes and names, size, band centring, and that it learns a toy task."""
import numpy as np
import pytest
import tf_keras as keras

from config.settings import GENRES, TrainConfig
from models.cnn import build_cnn
from tests.testkit.model_checks import loss_before_after, rhythmic_batch

SHAPE = (130, 128)  # 3 s at 22050 Hz, hop 512, 128 mels


def test_contract_shapes_names_and_size():
    model = build_cnn(SHAPE, len(GENRES), TrainConfig())
    assert model.input_names == ["log_mel"]
    assert model.input_shape == (None, *SHAPE)
    assert model.output_shape == (None, len(GENRES))
    assert model.layers[-1].name == "probabilities"
    assert model.count_params() == 118_362
    probs = model.predict(np.random.default_rng(0).standard_normal((3, *SHAPE)).astype("f"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs >= 0).all()


def test_kernels_carry_l2_and_frames_may_vary():
    model = build_cnn((None, 128), len(GENRES), TrainConfig(), input_name="mfcc")
    assert model.input_names == ["mfcc"]
    assert len(model.losses) == 5  # four conv kernels and the head
    for frames in (64, 173):
        assert model(np.zeros((2, frames, 128), "f")).shape == (2, len(GENRES))


def test_rejects_too_few_bins():
    with pytest.raises(ValueError, match="bins"):
        build_cnn((130, 8), len(GENRES), TrainConfig())


def test_each_band_is_centred_so_a_static_spectrum_is_not_an_input():
    """A constant offset per band (a recording's equalisation) does not change the answer."""
    model = build_cnn(SHAPE, len(GENRES), TrainConfig())
    x = np.random.default_rng(1).standard_normal((4, *SHAPE)).astype("f")
    tilt = np.linspace(-20.0, 20.0, SHAPE[1], dtype="f")
    np.testing.assert_allclose(model.predict(x + tilt, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_learns_rhythm_in_a_band():
    keras.utils.set_random_seed(0)
    x, y = rhythmic_batch(160, 64, 64, len(GENRES))
    model = build_cnn(x.shape[1:], len(GENRES), TrainConfig())
    before, after = loss_before_after(model, x, y, epochs=4)
    assert after < 0.25 * before, (before, after)
