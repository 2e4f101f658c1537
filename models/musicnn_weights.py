"""Copy musicnn's pretrained TF1 checkpoints, shipped in the ``musicnn`` 0.1.0 wheel, into Keras layers.

Nothing is downloaded, and the package's TF1 code is never imported: only its checkpoint files are read."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras

INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"
# Checkpoint entries that are training state, not model weights.
_OPTIMIZER_SUFFIXES = ("/Adam", "/Adam_1")
_OPTIMIZER_NAMES = ("beta1_power", "beta2_power")


def checkpoint_prefix(name: str = "MSD_vgg") -> str:
    """``<musicnn package>/<name>/`` (the files are ``.index`` etc.); FileNotFoundError names the fix if absent."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The pretrained {name} checkpoint ships in the musicnn wheel, which is not installed. "
                                f"Fix: {INSTALL_HINT} (--no-deps: musicnn pins numpy < 1.17).")
    folder = Path(list(spec.submodule_search_locations)[0]) / name
    if not (folder / ".index").is_file():
        raise FileNotFoundError(f"musicnn is installed at {folder.parent} but has no {name} checkpoint "
                                f"({folder}/.index). Fix: {INSTALL_HINT} (the PyPI wheel contains the checkpoints).")
    return str(folder) + "/"


def read_checkpoint(name: str = "MSD_vgg") -> dict[str, np.ndarray]:
    """Every model variable of the checkpoint by its TF1 name, optimiser slots left out."""
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(name))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key not in _OPTIMIZER_NAMES and not key.endswith(_OPTIMIZER_SUFFIXES)}


def checkpoint_key(scope: str, weight_name: str) -> str:
    """The TF1 checkpoint name of a Keras weight: ``<scope>/<kernel|bias|gamma|beta|moving_*>``."""
    return f"{scope}/{weight_name.split('/')[-1].split(':')[0]}"


def assign_layers(model: keras.Model, layer_to_scope: Mapping[str, str],
                  tensors: Mapping[str, np.ndarray]) -> list[str]:
    """Set each layer's weights from ``<scope>/<weight>``, unchanged (Keras and TF1 layers store kernels alike);
    a missing tensor or a shape mismatch raises. Returns the names used."""
    used: list[str] = []
    for layer_name, scope in layer_to_scope.items():
        layer = model.get_layer(layer_name)
        values = []
        for weight in layer.weights:
            key = checkpoint_key(scope, weight.name)
            if key not in tensors:
                raise KeyError(f"Checkpoint has no {key!r} for layer {layer_name!r}.")
            value = tensors[key]
            if tuple(value.shape) != tuple(weight.shape):
                raise ValueError(f"{key}: checkpoint shape {value.shape} != layer {layer_name!r} "
                                 f"weight shape {tuple(weight.shape)}.")
            values.append(value)
            used.append(key)
        layer.set_weights(values)
    return used
