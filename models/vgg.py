"""musicnn's MSD_vgg as a Keras 2 model: the pretrained body (musicnn/models.py's ``vgg`` layout, from the
musicnn wheel) and a new genre head. As in musicnn, block 5's valid pool reads only part of pool4's map."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tf_keras as keras

from config.settings import TrainConfig
from models import transfer
from models.blocks import as_image, batch_norm, check_input_shape, conv_block, softmax_head, undo_zscore
from models.musicnn import FRAMES, INPUT_BN, MELS  # MSD_vgg's input and input batch norm are MSD_musicnn's
from models.musicnn_weights import assign_layers, read_checkpoint

FILTERS = 128
# (pool size, strides) of blocks 1-5, as in musicnn.models.vgg.
POOLS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)),
)
BLOCK_DROPOUT = 0.25
HEAD_DROPOUT = 0.5
CHECKPOINT = "MSD_vgg"
BACKBONE_PREFIX = transfer.BACKBONE_PREFIX  # every backbone layer's name starts with it
EMBEDDING = "head_flatten"  # the flattened pool5, where registry.split_backbone cuts
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


def build_vgg(input_shape: Sequence[Optional[int]], num_classes: int, train: TrainConfig, *,
              input_name: str = "log_mel", pretrained: bool = True,
              input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> keras.Model:
    """MSD_vgg's body, then musicnn's own head (flatten, dropout 0.5, softmax); the input must be 187 x 96. Given
    ``input_stats`` a fixed first layer undoes the z-score, so the body sees its training scale; ``train`` is unused."""
    del train
    frames, bins = check_input_shape(input_shape, "vgg")
    if (frames, bins) != (FRAMES, MELS):
        raise ValueError(f"vgg: musicnn's MSD_vgg takes ({FRAMES}, {MELS}) = (frames, mels) inputs, got "
                         f"({frames}, {bins}). Use PipelineConfig().with_model('vgg') feature settings.")
    inputs = keras.Input(shape=(FRAMES, MELS), name=input_name, dtype="float32")
    x = batch_norm(INPUT_BN)(as_image(undo_zscore(inputs, input_stats), BACKBONE_PREFIX + "to_image"))
    for i, (pool_size, strides) in enumerate(POOLS, start=1):
        x = conv_block(x, FILTERS, name=_block(i), pool_size=pool_size, pool_strides=strides, bn_before_relu=False,
                       dropout=0.0 if i == len(POOLS) else BLOCK_DROPOUT)
    x = keras.layers.Flatten(name=EMBEDDING)(x)
    model = keras.Model(inputs, softmax_head(x, num_classes, dropout=HEAD_DROPOUT), name="vgg")
    if pretrained:  # every backbone tensor of the checkpoint
        assign_layers(model, checkpoint_scopes(), read_checkpoint(CHECKPOINT))
    return model
