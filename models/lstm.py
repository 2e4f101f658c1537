"""Recurrent model: a pretrained convolutional front end, then a bidirectional LSTM over time.

The front end is MSD_musicnn's front and mid end (models/musicnn.py: the same input, weights and z-score
undo), which turn 3 s of 96-band log-mel into 753 channels per frame, averaged here over 32 frames: 5 steps of
about half a second; the LSTM models how those steps follow each other. Why this front end: on the 288 real
clips the LSTM on MSD_vgg's first four blocks (11 steps of 6 bands x 128 channels) reached 0.556 eval clip
accuracy (three seeds), and a probe of this head on MSD_musicnn's steps 0.657 (two seeds; docs/model-selection.md,
"LSTM"); before that the plain two-layer LSTM over 20 MFCCs reached 0.595 on the 254-clip set and a
from-scratch conv front end overfitted. Like the VGG it trains in two phases (models/training.fit); its preset
trains only the LSTM head, on the frozen front end's outputs computed once.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tf_keras as keras

from config.settings import TrainConfig
from models import musicnn, transfer
from models.blocks import softmax_head

# Frames averaged per LSTM step: 187 frames of 16 ms -> 5 steps of 512 ms (the last 27 frames, 0.43 s, fall
# outside them). Fewer, longer steps overfitted less: on the 288 real clips, eval clip accuracy 0.62 with 46
# steps of 4 frames, 0.70 with 11 of 16, 0.71 with 5 of 32 (three seeds, two orders of the examples;
# docs/model-selection.md, "LSTM").
STEP_FRAMES = 32
FRONT_END_OUT = f"{musicnn.BACKBONE_PREFIX}steps"  # [batch, 5, 753], the last frozen layer
UNITS = 64  # per direction
# Dropout on the LSTM's input sequence, not recurrent_dropout: the latter disables the fused kernel.
DROPOUT = 0.5
HEAD_DROPOUT = 0.5


def _recurrent_head(steps_shape: Sequence[int], num_classes: int) -> keras.Model:
    """[steps, channels] -> batch norm (the 753 channels differ in scale by orders of magnitude), bidirectional
    LSTM over the steps, mean and max over time, softmax."""
    inputs = keras.Input(shape=tuple(steps_shape), name="front_end")
    x = keras.layers.BatchNormalization(name="steps_bn")(inputs)
    x = keras.layers.Dropout(DROPOUT, name="steps_dropout")(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True), name="lstm")(x)
    x = keras.layers.Concatenate(name="time_pool")([keras.layers.GlobalAveragePooling1D(name="time_mean")(x),
                                                   keras.layers.GlobalMaxPooling1D(name="time_max")(x)])
    return keras.Model(inputs, softmax_head(x, num_classes, dropout=HEAD_DROPOUT), name="lstm_head")


def build_lstm(
    input_shape: Sequence[Optional[int]],
    num_classes: int,
    train: TrainConfig,
    *,
    input_name: str = "log_mel",
    pretrained: bool = True,
    input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> keras.Model:
    """MSD_musicnn's front and mid end (pretrained unless ``pretrained=False``), averaged over
    :data:`STEP_FRAMES` frames, then the recurrent head.

    Takes musicnn's input (187 frames x 96 mels, see musicnn.build_musicnn for ``input_stats``). The head
    is one nested model, so the network splits into front end and head at :data:`FRONT_END_OUT`.
    """
    full = musicnn.build_musicnn(input_shape, num_classes, train, input_name=input_name, pretrained=pretrained,
                                 input_stats=input_stats)
    frames = full.get_layer(musicnn.MID_END).output
    steps = keras.layers.AveragePooling1D(STEP_FRAMES, name=FRONT_END_OUT)(frames)
    head = _recurrent_head(steps.shape[1:], num_classes)
    return keras.Model(full.input, head(steps), name="lstm")


def split_backbone(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(front end, recurrent head) sharing ``model``'s layers, for training the head on computed outputs."""
    return transfer.split_at(model, FRONT_END_OUT)


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze the pretrained front end (its batch norms stay frozen), as for musicnn."""
    musicnn.set_backbone_trainable(model, trainable)
