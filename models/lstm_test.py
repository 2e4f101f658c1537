"""The stacked LSTM: contract shapes and names, size, and that it learns a separable toy task."""
import numpy as np
import tf_keras as keras

from models.lstm import build_lstm
from models.model_test_utils import loss_before_after, separable_batch
from pipeline.config import GENRES, TrainConfig

SHAPE = (130, 20)  # 3 s at 22050 Hz, hop 512, 20 MFCCs


def test_contract_shapes_names_and_size():
    model = build_lstm(SHAPE, len(GENRES), TrainConfig())
    assert model.input_names == ["mfcc"]
    assert model.input_shape == (None, *SHAPE)
    assert model.output_shape == (None, len(GENRES))
    assert model.layers[-1].name == "probabilities"
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.LSTM)] == [128, 64]
    assert {"time_mean", "time_max"} <= {layer.name for layer in model.layers}  # pools every step
    assert model.count_params() == 126_986
    probs = model.predict(np.random.default_rng(0).standard_normal((3, *SHAPE)).astype("f"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_learns_separable_toy_task():
    keras.utils.set_random_seed(0)
    x, y = separable_batch(160, 40, 20, len(GENRES))
    model = build_lstm(x.shape[1:], len(GENRES), TrainConfig())
    before, after = loss_before_after(model, x, y, epochs=4)
    assert after < 0.25 * before, (before, after)
