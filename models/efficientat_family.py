"""The ``efficientat`` family: EfficientAT's mn04_as body, frozen, and a new genre head on its 384-d global pool,
on Transform's ``kaldi_log_mel`` (not z-scored). The pool scored as well as mn04's hidden layer or logits, is the
smaller, and is not shaped by AudioSet's classifier."""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from config.settings import TrainConfig
from models import transfer
from models.blocks import check_input_shape, softmax_head
from models.efficientat import build_mn04, load_mn04_weights, weights_path
from models.efficientat.log_mel import N_MELS

NAME = "efficientat"
BODY = "efficientat_mn04"  # the nested mn04 model: [batch, 128, frames] -> [batch, 384]
TO_BANDS = "efficientat_to_bands"
EMBEDDING = "efficientat_embedding"  # the body's output in the family's graph, where registry.split_backbone cuts
HEAD_DROPOUT = 0.5


def load_pretrained(mn04: keras.Model, train: TrainConfig) -> None:
    """Fill ``mn04`` (build_mn04's) with the release weights."""
    load_mn04_weights(mn04, weights_path(explicit=train.efficientat_weights))


def build_efficientat(input_shape: Sequence[Optional[int]], num_classes: int, train: TrainConfig, *,
                      input_name: str = "kaldi_log_mel", pretrained: bool = True) -> keras.Model:
    """mn04's frozen body -> 384-d embedding -> the head; any number of frames, but mn04's 128 Kaldi mel bands."""
    frames, bins = check_input_shape(input_shape, NAME)
    if bins != N_MELS:
        raise ValueError(f"{NAME}: mn04 takes {N_MELS} Kaldi mel bands, got {bins}. Use "
                         "PipelineConfig().with_model('efficientat') feature settings.")
    inputs = keras.Input(shape=(frames, N_MELS), name=input_name, dtype="float32")
    embedding = body(inputs, train, pretrained=pretrained)
    model = keras.Model(inputs, softmax_head(embedding, num_classes, dropout=HEAD_DROPOUT, normalise=True), name=NAME)
    transfer.set_backbone_trainable(model, False)
    return model


def body(inputs: tf.Tensor, train: TrainConfig, *, pretrained: bool = True) -> tf.Tensor:
    """mn04 up to its global pool (one nested model, :data:`BODY`) on ``inputs``: the [batch, 384] :data:`EMBEDDING`."""
    mn04 = build_mn04(waveform_input=False)
    if pretrained:
        load_pretrained(mn04, train)
    nested = keras.Model(mn04.input, mn04.get_layer("features").output, name=BODY)
    bands = keras.layers.Permute((2, 1), name=TO_BANDS)(inputs)
    # An identity layer: a nested model's own .output is its inner graph's, so the cut needs a layer of this graph.
    return keras.layers.Activation("linear", name=EMBEDDING)(nested(bands))
