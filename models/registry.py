"""One entry point from the pipeline configuration to an uncompiled Keras model.

The trainer calls :func:`build_model` (with Transform's per-bin statistics when
:func:`needs_input_stats`); for two-phase transfer learning it asks
:func:`has_pretrained_backbone` and toggles the body with :func:`set_backbone_trainable`.
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np
import tf_keras as keras

from models import vgg
from models.cnn import build_cnn
from models.lstm import build_lstm
from pipeline.config import PipelineConfig

Builder = Callable[..., keras.Model]  # (input_shape, num_classes, train, *, input_name) -> Model
BUILDERS: dict[str, Builder] = {"cnn": build_cnn, "lstm": build_lstm, "vgg": vgg.build_vgg}


def build_model(config: PipelineConfig, input_shape: Sequence[Optional[int]],
                input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> keras.Model:
    """The ``config.train.model`` family for ``input_shape`` = (frames, bins), input named ``features.kind``.

    ``input_stats``: Transform's per-bin (mean, std), used by pretrained families only
    (see :func:`needs_input_stats`); the others learn on the z-scored input as it is.
    """
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
    """Whether the family is trained in two phases (body frozen for ``frozen_epochs``, then fine-tuned)."""
    return config.train.model == "vgg"


def needs_input_stats(config: PipelineConfig) -> bool:
    """Whether :func:`build_model` wants Transform's per-bin (mean, std) to undo the z-score."""
    return has_pretrained_backbone(config)


def split_backbone(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(body, head) of a pretrained family, sharing the model's layers (see vgg.split_backbone)."""
    return vgg.split_backbone(model)


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze a pretrained body (BN stays frozen); raises for families without one."""
    vgg.set_backbone_trainable(model, trainable)
