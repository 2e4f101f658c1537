"""Read musicnn's pretrained TF1 checkpoints from the installed wheel and copy them into Keras layers.

The checkpoints ship inside the ``musicnn`` 0.1.0 wheel, so nothing is downloaded at run
time. Only the package's files are used: its code (TF1 graph building) is never imported here.
"""
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
    """The checkpoint prefix ``<musicnn package>/<name>/`` (trailing slash: the files are ``.index`` etc.).

    Raises FileNotFoundError naming the fix when musicnn or its checkpoint is absent.
    """
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The pretrained {name} checkpoint ships in the musicnn wheel, which is not installed. "
            f"Fix: {INSTALL_HINT} (--no-deps: musicnn pins numpy < 1.17).")
    folder = Path(list(spec.submodule_search_locations)[0]) / name
    if not (folder / ".index").is_file():
        raise FileNotFoundError(
            f"musicnn is installed at {folder.parent} but has no {name} checkpoint ({folder}/.index). "
            f"Fix: {INSTALL_HINT} (the PyPI wheel contains the checkpoints).")
    return str(folder) + "/"


def read_checkpoint(name: str = "MSD_vgg") -> dict[str, np.ndarray]:
    """Every model variable of the checkpoint by its TF1 name, optimiser slots left out."""
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(name))
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key not in _OPTIMIZER_NAMES and not key.endswith(_OPTIMIZER_SUFFIXES)
    }


def checkpoint_key(scope: str, weight_name: str) -> str:
    """The TF1 checkpoint name of a Keras weight: ``<scope>/<kernel|bias|gamma|beta|moving_*>``."""
    return f"{scope}/{weight_name.split('/')[-1].split(':')[0]}"


def assign_layers(model: keras.Model, layer_to_scope: Mapping[str, str],
                  tensors: Mapping[str, np.ndarray]) -> list[str]:
    """Set each Keras layer's weights from ``<scope>/<weight>`` (kernel, bias, gamma, beta, moving_*).

    Keras and tf.compat.v1.layers store conv kernels alike ([kh, kw, in, out]), so tensors are
    copied unchanged; a missing tensor or a shape mismatch raises. Returns the names used.
    """
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
