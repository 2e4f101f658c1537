"""Layer helpers shared by the model families, so the CNN and the VGG do not copy them."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

# Keras' and tf.compat.v1.layers' defaults, written out because musicnn's checkpoint statistics used exactly these.
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3


UNDO_ZSCORE = "undo_transform_zscore"


def undo_zscore(inputs: tf.Tensor, input_stats: Optional[tuple[np.ndarray, np.ndarray]]) -> tf.Tensor:
    """A fixed layer mapping Transform's per-bin z-scores back to the features' own scale (a pretrained body must
    see the values it was trained on); ``inputs`` unchanged when ``input_stats`` (mean, std per bin) is None."""
    if input_stats is None:
        return inputs
    bins = int(inputs.shape[-1])
    mean, std = (np.asarray(v, np.float32).reshape(bins) for v in input_stats)
    return keras.layers.Normalization(axis=-1, mean=mean, variance=np.square(std), invert=True,
                                      name=UNDO_ZSCORE)(inputs)


def as_image(inputs: tf.Tensor, name: str) -> tf.Tensor:
    """[batch, frames, bins] -> [batch, frames, bins, 1]: NHWC with time as height, as musicnn."""
    return keras.layers.Reshape((-1, inputs.shape[-1], 1), name=name)(inputs)


def conv_block(x: tf.Tensor, filters: int, *, name: str, pool_size: Sequence[int] = (2, 2),
               pool_strides: Optional[Sequence[int]] = None, bn_before_relu: bool = True, dropout: float = 0.0,
               l2: float = 0.0, bn_momentum: float = BN_MOMENTUM) -> tf.Tensor:
    """Conv 3x3 'same' + batch norm + ReLU + max pool (+ dropout), layers named ``{name}_conv`` etc.;
    ``bn_before_relu=False`` is musicnn's order, conv(+bias)-ReLU-BN, needed to load its checkpoint."""
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not bn_before_relu,
                            activation=None if bn_before_relu else "relu",
                            kernel_regularizer=keras.regularizers.L2(l2) if l2 else None, name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn", bn_momentum)(x)
    if bn_before_relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = keras.layers.MaxPooling2D(pool_size=tuple(pool_size), strides=tuple(pool_strides) if pool_strides else None,
                                  padding="valid", name=f"{name}_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def batch_norm(name: str, momentum: float = BN_MOMENTUM) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=BN_EPSILON, name=name)


def softmax_head(x: tf.Tensor, num_classes: int, *, dropout: float, l2: float = 0.0,
                 normalise: bool = False) -> tf.Tensor:
    """(Batch norm +) dropout + dense softmax named ``probabilities`` in every family; float32 even under mixed
    precision. ``normalise``: batch norm first, for pretrained embeddings whose channels differ vastly in scale."""
    if normalise:
        x = batch_norm("head_bn")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    return keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=regularizer,
                              name="probabilities", dtype="float32")(x)


def check_input_shape(input_shape: Sequence[Optional[int]], family: str) -> tuple[Optional[int], int]:
    """The contract's (frames, bins); bins must be known, frames may be None."""
    shape = tuple(input_shape)
    if len(shape) != 2 or shape[1] is None or int(shape[1]) <= 0 or (shape[0] is not None and int(shape[0]) <= 0):
        raise ValueError(f"{family}: input_shape must be (frames, bins) with bins known, got {shape!r}.")
    return (None if shape[0] is None else int(shape[0])), int(shape[1])
