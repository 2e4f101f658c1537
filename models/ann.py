"""Dense network on per-segment summary statistics (the "summary" feature kind): the classic GTZAN
"features CSV + MLP" model, with the statistics (models/features.summary) computed in the TF graph."""
from __future__ import annotations

from typing import Optional, Sequence

import tf_keras as keras

from config.settings import TrainConfig
from models.blocks import check_input_shape, softmax_head

UNITS: tuple[int, ...] = (256, 128)
# ~1000 training segments and 74 inputs: dropout and L2 keep the two hidden layers from memorising tracks.
DROPOUT = 0.3
L2 = 1e-4


def build_ann(input_shape: Sequence[Optional[int]], num_classes: int, train: TrainConfig, *,
              input_name: str = "summary") -> keras.Model:
    """Two dense ReLU layers with batch norm and dropout, softmax; ``train`` only fits the families' signature."""
    del train
    frames, bins = check_input_shape(input_shape, "ann")
    if frames is None:
        raise ValueError("ann: the summary row count must be known (1 for features.kind 'summary').")
    inputs = keras.Input(shape=(frames, bins), name=input_name, dtype="float32")
    x = keras.layers.Flatten(name="statistics")(inputs)
    for i, units in enumerate(UNITS, start=1):
        x = keras.layers.Dense(units, use_bias=False, kernel_regularizer=keras.regularizers.L2(L2), name=f"dense{i}")(x)
        x = keras.layers.BatchNormalization(name=f"dense{i}_bn")(x)
        x = keras.layers.ReLU(name=f"dense{i}_relu")(x)
        if i < len(UNITS):
            x = keras.layers.Dropout(DROPOUT, name=f"dense{i}_dropout")(x)
    outputs = softmax_head(x, num_classes, dropout=DROPOUT, l2=L2)
    return keras.Model(inputs, outputs, name="ann")
