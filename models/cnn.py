"""From-scratch 2D CNN over the log-mel spectrogram, small enough to train on a CPU."""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from config.settings import TrainConfig
from models.blocks import as_image, check_input_shape, conv_block, softmax_head

FILTERS: tuple[int, ...] = (16, 32, 64, 128)
# Regularisation for ~1000 three-second segments: L2 on every kernel, dropout before the head.
L2 = 1e-4
HEAD_DROPOUT = 0.5
BN_MOMENTUM = 0.9


def centre_bands(inputs: tf.Tensor, name: str = "band_centre") -> tf.Tensor:
    """[batch, frames, bins] minus each band's mean over the frames, in built-in layers (no Python needed to load)."""
    means = keras.layers.GlobalAveragePooling1D(keepdims=True, name=f"{name}_mean")(inputs)
    return keras.layers.Subtract(name=name)([inputs, means])


def build_cnn(input_shape: Sequence[Optional[int]], num_classes: int, train: TrainConfig, *,
              input_name: str = "log_mel") -> keras.Model:
    """Band centring stops a recording's long-term spectrum outweighing the music (docs/model-selection.md,
    "CNN"); pooling is over time only, because genre cues such as a heavy low end live in particular bands."""
    del train
    frames, bins = check_input_shape(input_shape, "cnn")
    if bins < 2 ** len(FILTERS):
        raise ValueError(f"cnn: {bins} bins cannot go through {len(FILTERS)} 2x2 poolings.")
    inputs = keras.Input(shape=(frames, bins), name=input_name, dtype="float32")
    x = as_image(centre_bands(inputs), "to_image")
    for i, filters in enumerate(FILTERS, start=1):
        x = conv_block(x, filters, name=f"block{i}", l2=L2, bn_momentum=BN_MOMENTUM)
    # [batch, time, freq, channels] -> [batch, time, freq * channels]; pool over time.
    x = keras.layers.Reshape((-1, x.shape[2] * x.shape[3]), name="bands")(x)
    x = keras.layers.Concatenate(name="time_pool")([keras.layers.GlobalAveragePooling1D(name="time_mean")(x),
                                                    keras.layers.GlobalMaxPooling1D(name="time_max")(x)])
    outputs = softmax_head(x, num_classes, dropout=HEAD_DROPOUT, l2=L2)
    return keras.Model(inputs, outputs, name="cnn")
