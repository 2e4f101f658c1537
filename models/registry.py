"""One entry point from the pipeline configuration to an uncompiled Keras model, and the two-phase transfer
learning hooks (:func:`has_pretrained_backbone`, :func:`set_backbone_trainable`) the trainer asks."""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np
import tf_keras as keras

from config.settings import PipelineConfig
from models import efficientat_family, efficientnet, lstm, musicnn, musicnn_efficientat, transfer, vgg
from models.ann import build_ann
from models.cnn import build_cnn

Builder = Callable[..., keras.Model]  # (input_shape, num_classes, train, *, input_name) -> Model
BUILDERS: dict[str, Builder] = {"cnn": build_cnn, "lstm": lstm.build_lstm, "vgg": vgg.build_vgg, "ann": build_ann,
                                "efficientnet": efficientnet.build_efficientnet, "musicnn": musicnn.build_musicnn,
                                "efficientat": efficientat_family.build_efficientat,
                                "musicnn_efficientat": musicnn_efficientat.build_musicnn_efficientat}
# Families that can start from pretrained weights, and the layer after which split_backbone cuts their body off.
TRANSFER_FAMILIES = {"vgg": vgg.EMBEDDING, "efficientnet": efficientnet.EMBEDDING, "lstm": lstm.FRONT_END_OUT,
                     "musicnn": musicnn.EMBEDDING, "efficientat": efficientat_family.EMBEDDING,
                     "musicnn_efficientat": musicnn_efficientat.EMBEDDING}
# Families whose pretrained body is (or includes) a musicnn checkpoint (MSD_vgg or MSD_musicnn).
MUSICNN_FAMILIES = ("vgg", "lstm", "musicnn", "musicnn_efficientat")


def build_model(config: PipelineConfig, input_shape: Sequence[Optional[int]],
                input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> keras.Model:
    """The ``config.train.model`` family for ``input_shape`` = (frames, bins) (a shape per input kind for a family
    of several inputs), input named ``features.kind``; ``input_stats`` see :func:`needs_input_stats`."""
    name = config.train.model
    if name not in BUILDERS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(BUILDERS)}.")
    kwargs: dict = {"input_name": config.features.kind}
    if needs_input_stats(config):
        if input_stats is None:
            warnings.warn(f"{name}: no input_stats given, so the pretrained body sees Transform's per-bin "
                          "z-scores instead of the raw features it was trained on; pass "
                          "preprocessing.normalisation_stats(...).", stacklevel=2)
        kwargs["input_stats"] = input_stats
    return BUILDERS[name](input_shape, len(config.genres), config.train, **kwargs)


def has_pretrained_backbone(config: PipelineConfig) -> bool:
    """Whether the family trains in two phases (body frozen for ``frozen_epochs``, then fine-tuned): always for
    the musicnn and efficientat families, for EfficientNet only when it has weights."""
    if config.train.model == "efficientnet":
        return efficientnet.weights_source(config.train.backbone_weights) is not None
    return config.train.model in (*MUSICNN_FAMILIES, "efficientat")  # musicnn_efficientat is in both


def needs_input_stats(config: PipelineConfig) -> bool:
    """Whether :func:`build_model` wants Transform's per-bin (mean, std) to undo the z-score: only the musicnn
    bodies, trained on musicnn's own scale (ImageNet never saw spectrograms; Kaldi log-mel is not z-scored)."""
    return config.train.model in MUSICNN_FAMILIES


def split_backbone(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(body, head) of a pretrained family, sharing the model's layers (see transfer.split_at)."""
    return transfer.split_at(model, _embedding_layer(model))


def set_backbone_trainable(model: keras.Model, trainable: bool, *, train_batch_norm: bool = False) -> None:
    """Freeze or unfreeze a pretrained body (BN frozen unless ``train_batch_norm``); raises for other families."""
    _embedding_layer(model)  # raises for families without a pretrained body
    transfer.set_backbone_trainable(model, trainable, train_batch_norm=train_batch_norm)


def _embedding_layer(model: keras.Model) -> str:
    """A pretrained family's cut, found by the model's name (every builder names it after its family)."""
    if model.name not in TRANSFER_FAMILIES:
        raise ValueError(f"Model {model.name!r} has no pretrained backbone; only {', '.join(TRANSFER_FAMILIES)} do.")
    return TRANSFER_FAMILIES[model.name]
