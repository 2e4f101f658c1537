"""``python -m tagging ROOT --zero-shot``: genres from EfficientAT mn04's AudioSet classes, no trained model.

Each clip takes a trained efficientat model's serving_default path (models/signatures.classify_clip), with
mn04's AudioSet genre logits as segment scores, so a row has the trained tagger's format; only its
``model_version`` says zero-shot.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from config.settings import PipelineConfig
from tagging.model import SIGNATURE, GenreSignatureHandler, ModelRef, cached_model

FAMILY = "efficientat"
SOURCE = "zero-shot"
VERSION = "mn04_as-zero-shot"


def model_ref(weights: Optional[str] = None) -> ModelRef:
    """The zero-shot 'model': mn04_as's verified weights file, found or downloaded (UserError when neither)."""
    from models.efficientat import weights_path
    return ModelRef(path=str(weights_path(explicit=weights)), version=VERSION, source=SOURCE)


def family_config(segment_seconds: Optional[float] = None) -> PipelineConfig:
    """The efficientat preset, with the tagger's segment length."""
    config = PipelineConfig().with_model(FAMILY)
    if segment_seconds is not None:
        config.audio = dataclasses.replace(config.audio, segment_seconds=segment_seconds, hop_seconds=segment_seconds)
    return config


class ZeroShotModel:
    """Stands for a loaded SavedModel; ``tft_layer`` is Transform's preprocessing_fn itself."""

    def __init__(self, weights_file: str, config: PipelineConfig):
        from models.efficientat import build_mn04, load_mn04_weights
        self.config = config
        self.mn04 = build_mn04(waveform_input=False)
        load_mn04_weights(self.mn04, weights_file)
        self.signatures = {SIGNATURE: self.classify}

    def tft_layer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        from models import preprocessing
        return preprocessing.preprocessing_fn(inputs, {"pipeline_config": self.config.to_json()})

    def segment_scores(self, features: Any) -> Any:
        """[segments, frames, 128] Kaldi log-mel -> [segments, genres] zero-shot scores."""
        import tensorflow as tf

        from models.efficientat import zero_shot_genre_scores
        logits = self.mn04(tf.transpose(features, [0, 2, 1]), training=False)["logits"]
        return tf.constant(zero_shot_genre_scores(logits.numpy(), self.config.genres), tf.float32)

    def classify(self, waveform: Any, sample_rate: Any) -> dict[str, Any]:
        from models import signatures
        return signatures.classify_clip(self, self.config, self.segment_scores, waveform, sample_rate)


class ZeroShotHandler(GenreSignatureHandler):
    """The tagger's handler with :class:`ZeroShotModel` for the SavedModel (one per process and weights file)."""

    def load_model(self) -> ZeroShotModel:
        config = family_config(self._audio.segment_seconds)
        return cached_model((self._model.path, config.to_json()), self._tf_threads,
                            lambda: ZeroShotModel(self._model.path, config))
