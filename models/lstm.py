"""Recurrent model: a pretrained convolutional front end, then a bidirectional LSTM over time.

The front end is the first four blocks of musicnn's MSD_vgg (models/vgg.py: the same input,
weights and z-score undo), which turn 3 s of 96-band log-mel into 11 steps of 6 bands x 128
channels; the LSTM models how those steps follow each other. On the real clips the plain
two-layer LSTM over 20 MFCCs reached 0.595 clip accuracy and a from-scratch conv front end
overfitted (eval segment accuracy ~0.45 on the 288-clip set); BENCHMARKS.md, "LSTM settings
tried". Like the VGG it trains in two phases (models/training.fit): the LSTM head on the frozen
front end's outputs, computed once, then optionally the whole network.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tf_keras as keras

from models import transfer, vgg
from models.blocks import softmax_head
from pipeline.config import TrainConfig

# Output of MSD_vgg's block 4 ([batch, 11, 6, 128]): block 5's [4, 4] pool would leave 2 steps.
FRONT_END_OUT = f"{vgg.BACKBONE_PREFIX}block4_dropout"
UNITS = 64  # per direction
# Dropout on the LSTM's input sequence, not recurrent_dropout: the latter disables the fused kernel.
DROPOUT = 0.3
HEAD_DROPOUT = 0.5


def _recurrent_head(steps_shape: Sequence[int], num_classes: int) -> keras.Model:
    """[steps, bands, channels] -> bidirectional LSTM over the steps, mean and max over time, softmax."""
    inputs = keras.Input(shape=tuple(steps_shape), name="front_end")
    x = keras.layers.Reshape((steps_shape[0], steps_shape[1] * steps_shape[2]), name="steps")(inputs)
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
    """MSD_vgg blocks 1-4 (pretrained unless ``pretrained=False``), then the recurrent head.

    Takes the VGG's input (187 frames x 96 mels, see vgg.build_vgg for ``input_stats``). The head
    is one nested model, so the network splits into front end and head at :data:`FRONT_END_OUT`.
    """
    full = vgg.build_vgg(input_shape, num_classes, train, input_name=input_name, pretrained=pretrained,
                         input_stats=input_stats)
    front = full.get_layer(FRONT_END_OUT).output
    head = _recurrent_head(front.shape[1:], num_classes)
    return keras.Model(full.input, head(front), name="lstm")


def split_backbone(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(front end, recurrent head) sharing ``model``'s layers, for training the head on computed outputs."""
    return transfer.split_at(model, FRONT_END_OUT)


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze the pretrained front end (its batch norms stay frozen), as for the VGG."""
    vgg.set_backbone_trainable(model, trainable)
