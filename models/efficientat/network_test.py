"""mn04's graph: shapes on noise with random weights (CI), parity with the reference implementation (../shared)."""
import numpy as np
import pytest
import tf_keras as keras

from models.efficientat import build_mn04, load_mn04_weights
from models.efficientat.network import hard_swish, round_channels, stage_widths

REFERENCE_STAGE_WIDTHS = [8, 8, 16, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 64, 64, 64, 384]


def test_random_weight_model_on_noise_gives_embedding_hidden_and_logits():
    model = build_mn04(block_means=True)
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 320000)).astype(np.float32)
    out = model(noise, training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "features": (2, 384), "hidden": (2, 512), "logits": (2, 527), "block_means": (2, sum(REFERENCE_STAGE_WIDTHS))}
    assert all(np.isfinite(v.numpy()).all() for v in out.values())


def test_width_04_has_the_reference_size_and_stages():
    assert stage_widths() == REFERENCE_STAGE_WIDTHS
    assert build_mn04(waveform_input=False).count_params() == 993_439  # the published "993k"


def test_mel_input_takes_any_number_of_frames():
    model = build_mn04(waveform_input=False)
    out = model(np.zeros((1, 128, 37), np.float32), training=False)
    assert tuple(out["logits"].shape) == (1, 527)


def test_channel_rounding_keeps_within_ten_percent():
    assert [round_channels(c * 0.4) for c in (16, 24, 72, 120, 672, 960)] == [8, 16, 32, 48, 272, 384]


def test_hardswish_is_torchs():
    x = np.array([-4.0, -3.0, -1.0, 0.0, 1.0, 3.0, 4.0], np.float32)
    inputs = keras.Input((x.size,))
    layer = keras.Model(inputs, hard_swish(inputs, "hs"))
    np.testing.assert_allclose(layer(x[None]).numpy()[0], x * np.clip(x + 3, 0, 6) / 6, atol=1e-6)
    assert all(type(l).__module__.startswith("tf_keras") for l in layer.layers)  # loadable without this module


@pytest.fixture(scope="module")
def pretrained(mn04_weights_file):
    model = build_mn04(block_means=True)
    load_mn04_weights(model, mn04_weights_file)
    return model


@pytest.mark.real_data
def test_pretrained_model_reproduces_reference_outputs(pretrained, mn04_reference):
    out = pretrained(mn04_reference["waveform_int16"] / 32768.0, training=False)
    for name, reference in (("block_means", "block_means"), ("features", "features384"),
                            ("hidden", "hidden512"), ("logits", "logits527")):
        np.testing.assert_allclose(out[name].numpy(), mn04_reference[reference], atol=1e-3, err_msg=name)


@pytest.mark.real_data
def test_pretrained_model_on_reference_mel(mn04_weights_file, mn04_reference):
    model = build_mn04(waveform_input=False)
    load_mn04_weights(model, mn04_weights_file)
    out = model(mn04_reference["mel"], training=False)
    np.testing.assert_allclose(out["logits"].numpy(), mn04_reference["logits527"], atol=1e-3)
