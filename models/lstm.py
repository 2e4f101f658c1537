"""Recurrent model: MSD_musicnn's pretrained front and mid end (models/musicnn.py), averaged into 5 steps of about
half a second, then a bidirectional LSTM; this front end beat the alternatives (docs/model-selection.md, "LSTM")."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tf_keras as keras

from config.settings import TrainConfig
from models import musicnn
from models.blocks import softmax_head

# 187 frames of 16 ms -> 5 steps of 512 ms: fewer, longer steps overfitted less (docs/model-selection.md, "LSTM").
STEP_FRAMES = 32
FRONT_END_OUT = f"{musicnn.BACKBONE_PREFIX}steps"  # [batch, 5, 753], the last frozen layer
UNITS = 64  # per direction
# Dropout on the LSTM's input sequence, not recurrent_dropout: the latter disables the fused kernel.
DROPOUT = 0.5
HEAD_DROPOUT = 0.5


def build_lstm(input_shape: Sequence[Optional[int]], num_classes: int, train: TrainConfig, *,
               input_name: str = "log_mel", pretrained: bool = True,
               input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> keras.Model:
    """musicnn's front end (its input and ``input_stats``), averaged over :data:`STEP_FRAMES` frames, then the
    recurrent head as one nested model, so the network splits at :data:`FRONT_END_OUT`."""
    full = musicnn.build_musicnn(input_shape, num_classes, train, input_name=input_name, pretrained=pretrained,
                                 input_stats=input_stats)
    frames = full.get_layer(musicnn.MID_END).output
    steps = keras.layers.AveragePooling1D(STEP_FRAMES, name=FRONT_END_OUT)(frames)
    # The head: batch norm (753 channels of very different scales), BiLSTM, time pooling, softmax.
    head_input = keras.Input(shape=tuple(steps.shape[1:]), name="front_end")
    x = keras.layers.BatchNormalization(name="steps_bn")(head_input)
    x = keras.layers.Dropout(DROPOUT, name="steps_dropout")(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True), name="lstm")(x)
    x = keras.layers.Concatenate(name="time_pool")([keras.layers.GlobalAveragePooling1D(name="time_mean")(x),
                                                   keras.layers.GlobalMaxPooling1D(name="time_max")(x)])
    head = keras.Model(head_input, softmax_head(x, num_classes, dropout=HEAD_DROPOUT), name="lstm_head")
    return keras.Model(full.input, head(steps), name="lstm")
