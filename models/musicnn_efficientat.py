"""The ``musicnn_efficientat`` family: both pretrained bodies, frozen, and one genre head on their joined
embeddings. They err on different clips, and one head on both beat either alone and a vote of the two
(docs/model-selection.md, "Both bodies"). Fine-tuning the pair is refused: no augmentation, no second phase."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import tf_keras as keras

from config.settings import TrainConfig
from models import efficientat_family, musicnn, transfer
from models.blocks import check_input_shape, softmax_head
from models.efficientat.log_mel import N_MELS

NAME = "musicnn_efficientat"
MUSICNN_INPUT, MN04_INPUT = "log_mel", "kaldi_log_mel"
EMBEDDING = "joint_embedding"  # [batch, 753 + 384], where split_backbone cuts
HEAD_DROPOUT = 0.5


def build_musicnn_efficientat(input_shape: Mapping[str, Sequence[Optional[int]]], num_classes: int,
                              train: TrainConfig, *, input_name: Optional[str] = None, pretrained: bool = True,
                              input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> keras.Model:
    """Both frozen bodies -> joined embedding -> the head; ``input_shape``: (frames, bins) by input name,
    ``input_stats``: Transform's per-bin (mean, std) of ``log_mel``; ``input_name`` is unused."""
    del input_name
    if set(input_shape) != {MUSICNN_INPUT, MN04_INPUT}:
        raise ValueError(f"{NAME}: takes the inputs {MUSICNN_INPUT!r} and {MN04_INPUT!r}, got {sorted(input_shape)}. "
                         f"Use PipelineConfig().with_model({NAME!r}) feature settings.")
    if train.epochs > train.frozen_epochs:
        raise ValueError(f"{NAME}: trains its heads on the frozen bodies only: --epochs ({train.epochs}) must be at "
                         f"most --frozen-epochs ({train.frozen_epochs}).")
    musicnn_shape = check_input_shape(input_shape[MUSICNN_INPUT], NAME)
    if musicnn_shape != (musicnn.FRAMES, musicnn.MELS):
        raise ValueError(f"{NAME}: {MUSICNN_INPUT} must be ({musicnn.FRAMES}, {musicnn.MELS}), got {musicnn_shape}.")
    mn04_frames, mn04_bins = check_input_shape(input_shape[MN04_INPUT], NAME)
    if mn04_bins != N_MELS:
        raise ValueError(f"{NAME}: {MN04_INPUT} must have {N_MELS} Kaldi mel bands, got {mn04_bins}.")
    inputs = {MUSICNN_INPUT: keras.Input(shape=musicnn_shape, name=MUSICNN_INPUT, dtype="float32"),
              MN04_INPUT: keras.Input(shape=(mn04_frames, N_MELS), name=MN04_INPUT, dtype="float32")}
    joined = keras.layers.Concatenate(name=EMBEDDING)(
        [musicnn.body(inputs[MUSICNN_INPUT], input_stats),
         efficientat_family.body(inputs[MN04_INPUT], train, pretrained=pretrained)])
    model = keras.Model(inputs, softmax_head(joined, num_classes, dropout=HEAD_DROPOUT, normalise=True), name=NAME)
    if pretrained:
        musicnn.load_pretrained(model)
    transfer.set_backbone_trainable(model, False)
    return model
