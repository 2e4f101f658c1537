"""The checkpoint reader: found in the installed wheel, optimiser state left out, clear errors when absent."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from models import musicnn_weights
from models.musicnn_weights import INSTALL_HINT, assign_layers, checkpoint_prefix, read_checkpoint


def test_checkpoint_ships_in_the_musicnn_package():
    prefix = checkpoint_prefix("MSD_vgg")
    package = Path(list(importlib.util.find_spec("musicnn").submodule_search_locations)[0])
    assert prefix == str(package / "MSD_vgg") + "/"
    assert (Path(prefix) / ".data-00000-of-00001").is_file()


def test_read_checkpoint_keeps_model_variables_only():
    tensors = read_checkpoint("MSD_vgg")
    assert not [key for key in tensors if "Adam" in key or key.endswith("_power")]
    assert tensors["1CNN/kernel"].shape == (3, 3, 1, 128)
    assert tensors["dense/kernel"].shape == (256, 50)
    assert len(tensors) == 5 * 2 + 6 * 4 + 2  # convs, batch norms, the 50-tag dense layer
    assert all(np.isfinite(value).all() for value in tensors.values())


def test_missing_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(musicnn_weights.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="not installed") as error:
        checkpoint_prefix("MSD_vgg")
    assert INSTALL_HINT in str(error.value)


def test_missing_checkpoint_names_the_fix():
    with pytest.raises(FileNotFoundError, match="no MSD_nothing checkpoint") as error:
        checkpoint_prefix("MSD_nothing")
    assert INSTALL_HINT in str(error.value)


def test_assign_layers_checks_names_and_shapes():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs))
    kernel, bias = np.ones((3, 3, 1, 2), "f"), np.arange(2, dtype="f")
    assert assign_layers(model, {"conv": "c"}, {"c/kernel": kernel, "c/bias": bias}) == ["c/kernel", "c/bias"]
    np.testing.assert_array_equal(model.get_layer("conv").bias.numpy(), bias)
    with pytest.raises(KeyError, match="c/bias"):
        assign_layers(model, {"conv": "c"}, {"c/kernel": kernel})
    with pytest.raises(ValueError, match="shape"):
        assign_layers(model, {"conv": "c"}, {"c/kernel": np.ones((3, 3, 2, 2), "f"), "c/bias": bias})
