"""Stacked LSTM over MFCC frames: the sequence-model baseline, fast on a CPU."""
from __future__ import annotations

from typing import Optional, Sequence

import tf_keras as keras

from models.blocks import check_input_shape, softmax_head
from pipeline.config import TrainConfig

UNITS: tuple[int, ...] = (128, 64)
# Dropout between layers, not recurrent_dropout: the latter disables the fused kernel.
DROPOUT = 0.3
HEAD_DROPOUT = 0.3


def build_lstm(
    input_shape: Sequence[Optional[int]],
    num_classes: int,
    train: TrainConfig,
    *,
    input_name: str = "mfcc",
) -> keras.Model:
    """Two stacked LSTM layers over the frames, then mean and max over time, dropout, softmax.

    Pooling every step of the last layer, rather than keeping only its final state, lets
    the whole segment vote; on the synthetic set it lifted held-out accuracy from ~0.7 to
    >0.9 for the same training time. ``train`` is accepted for the common signature.
    """
    del train
    frames, bins = check_input_shape(input_shape, "lstm")
    inputs = keras.Input(shape=(frames, bins), name=input_name, dtype="float32")
    x = inputs
    for i, units in enumerate(UNITS, start=1):
        x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm{i}")(x)
        if i < len(UNITS):
            x = keras.layers.Dropout(DROPOUT, name=f"lstm{i}_dropout")(x)
    x = keras.layers.Concatenate(name="time_pool")([keras.layers.GlobalAveragePooling1D(name="time_mean")(x),
                                                   keras.layers.GlobalMaxPooling1D(name="time_max")(x)])
    outputs = softmax_head(x, num_classes, dropout=HEAD_DROPOUT)
    return keras.Model(inputs, outputs, name="lstm")
