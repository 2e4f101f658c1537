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
    """Two LSTM layers (the last returns only its final state), dropout, dense softmax.

    ``train`` is accepted for the families' common signature; this model needs none of it.
    """
    del train
    frames, bins = check_input_shape(input_shape, "lstm")
    inputs = keras.Input(shape=(frames, bins), name=input_name, dtype="float32")
    x = inputs
    for i, units in enumerate(UNITS, start=1):
        last = i == len(UNITS)
        x = keras.layers.LSTM(units, return_sequences=not last, name=f"lstm{i}")(x)
        if not last:
            x = keras.layers.Dropout(DROPOUT, name=f"lstm{i}_dropout")(x)
    outputs = softmax_head(x, num_classes, dropout=HEAD_DROPOUT)
    return keras.Model(inputs, outputs, name="lstm")
