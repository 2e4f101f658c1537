"""musicnn's MSD_vgg as a Keras 2 model: the pretrained body, loaded from the musicnn wheel, and a new genre head.

Layout, read from musicnn/models.py (``vgg``) and its extractor: the input batch is
[batch, 187 frames, 96 mels]; ``tf.expand_dims(x, 3)`` makes it NHWC with time as height
and mel bins as width. Our transformed feature has the same [frames, bins] order, so a
reshape to [frames, bins, 1] shows the filters the spectrogram as they were trained on
(pool [4, 1] pools 4 frames and 1 band). Layer order per block is musicnn's:
conv(+bias) -> ReLU -> batch norm -> max pool (valid) -> dropout 0.25 (blocks 1-4).
Kept as musicnn has it: block 5's valid [4, 4] pool over pool4's [11, 6] map reads only
8 of its 11 steps and 4 of its 6 bands, so the top mel bands reach the head only through
the receptive fields of the lower ones.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tf_keras as keras

from config.settings import TrainConfig
from models import transfer
from models.blocks import (
    BN_EPSILON, BN_MOMENTUM, as_image, check_input_shape, conv_block, softmax_head, undo_zscore)
from models.musicnn_weights import assign_layers, read_checkpoint

FRAMES, MELS = 187, 96  # musicnn's training input: 3 s at 16 kHz, hop 256
FILTERS = 128
# (pool size, strides) of blocks 1-5, as in musicnn.models.vgg.
POOLS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)),
)
BLOCK_DROPOUT = 0.25
HEAD_DROPOUT = 0.5
CHECKPOINT = "MSD_vgg"
# Every backbone layer's name starts with this; the trainer freezes them by it.
BACKBONE_PREFIX = "musicnn_"
INPUT_BN = BACKBONE_PREFIX + "input_bn"
POOLED_FEATURES = BACKBONE_PREFIX + "block5_pool"  # [batch, 2, 1, 128], musicnn's pool5


def _block(i: int) -> str:
    return f"{BACKBONE_PREFIX}block{i}"


def checkpoint_scopes() -> dict[str, str]:
    """Keras layer name -> TF1 variable scope in the MSD_vgg checkpoint (creation order in models.vgg)."""
    scopes = {INPUT_BN: "batch_normalization"}
    for i in range(1, len(POOLS) + 1):
        scopes[f"{_block(i)}_conv"] = f"{i}CNN"
        scopes[f"{_block(i)}_bn"] = f"batch_normalization_{i}"
    return scopes


def build_vgg(
    input_shape: Sequence[Optional[int]],
    num_classes: int,
    train: TrainConfig,
    *,
    input_name: str = "log_mel",
    pretrained: bool = True,
    input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> keras.Model:
    """MSD_vgg's body (weights from the checkpoint unless ``pretrained=False``), flatten, dropout 0.5, softmax.

    The head is musicnn's own (flatten of pool5, [2, 1, 128] -> 256, dropout 0.5, dense) with
    ``num_classes`` outputs instead of 50 tags. The input must be 187 x 96: the flatten, and the
    filters' notion of pitch and tempo, depend on it. ``train`` is accepted for the families'
    common signature; two-phase fine-tuning is the trainer's (see :func:`set_backbone_trainable`).

    ``input_stats`` = (mean, std) per mel bin of Transform's z-score (preprocessing.normalisation_stats).
    Given them, a fixed first layer undoes the z-score, so the pretrained body sees musicnn's own
    log10(1 + 10000 mel) values, the scale its input batch norm was trained on (mean 2.18, var 1.60).
    Without them the body sees z-scores; measured on 76 real GTZAN clips, a linear probe on the
    frozen body's features dropped from 0.78 to 0.67 segment accuracy.
    """
    del train
    frames, bins = check_input_shape(input_shape, "vgg")
    if (frames, bins) != (FRAMES, MELS):
        raise ValueError(f"vgg: musicnn's MSD_vgg takes ({FRAMES}, {MELS}) = (frames, mels) inputs, got "
                         f"({frames}, {bins}). Use PipelineConfig().with_model('vgg') feature settings.")
    inputs = keras.Input(shape=(FRAMES, MELS), name=input_name, dtype="float32")
    x = as_image(undo_zscore(inputs, input_stats), BACKBONE_PREFIX + "to_image")
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=INPUT_BN)(x)
    for i, (pool_size, strides) in enumerate(POOLS, start=1):
        last = i == len(POOLS)
        x = conv_block(x, FILTERS, name=_block(i), pool_size=pool_size, pool_strides=strides,
                       bn_before_relu=False, dropout=0.0 if last else BLOCK_DROPOUT)
    x = keras.layers.Flatten(name="head_flatten")(x)
    outputs = softmax_head(x, num_classes, dropout=HEAD_DROPOUT)
    model = keras.Model(inputs, outputs, name="vgg")
    if pretrained:
        load_pretrained(model)
    return model


def load_pretrained(model: keras.Model, checkpoint: str = CHECKPOINT) -> list[str]:
    """Copy every backbone tensor of ``checkpoint`` into ``model``; returns the checkpoint names loaded."""
    return assign_layers(model, checkpoint_scopes(), read_checkpoint(checkpoint))


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.name.startswith(BACKBONE_PREFIX)]


def split_backbone(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(body, head) sharing ``model``'s layers: body maps the input to the flattened pool5
    embedding, head maps that embedding to probabilities. Training the head on embeddings
    computed once is the frozen phase without a forward pass through the body per epoch."""
    return transfer.split_at(model, "head_flatten")


def set_backbone_trainable(model: keras.Model, trainable: bool, *, train_batch_norm: bool = False) -> None:
    """Freeze (phase 1) or unfreeze (phase 2) the pretrained body, BN frozen (transfer.set_trainable)."""
    layers = backbone_layers(model)
    if not layers:
        raise ValueError(f"Model {model.name!r} has no pretrained backbone (no '{BACKBONE_PREFIX}*' layers).")
    transfer.set_trainable(layers, trainable, train_batch_norm=train_batch_norm)
