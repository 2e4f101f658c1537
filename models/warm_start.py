"""Warm start: a run on grown data starts from the champion's weights (the Trainer's ``base_model``, saved beside its
SavedModel in ``warm_start/``) and trains at most ``train.warm_start_epochs``; a run they do not fit trains from the
start, and :class:`Start` says why (docs/models.md, "Warm start")."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import contract, model_tracks
from config.settings import SPLITS, PipelineConfig
from models import live_examples, registry, transfer

FOLDER, WEIGHTS_FILE, ABOUT_FILE = "warm_start", "weights.h5", "about.json"
PROPERTY = "warm_start"  # the Model artifact's custom property, and the MLflow tag
TRAIN, EVAL, TEST = SPLITS


@dataclasses.dataclass(frozen=True)
class Start:
    """Warm from the champion in ``base`` (its Model folder) for at most ``epochs``, or cold (0) for ``reason``."""

    epochs: int = 0
    base: str = ""
    reason: str = ""

    def describe(self, base_name: str = "") -> str:
        if self.epochs:
            return f"warm start from the champion ({base_name or self.base}): up to {self.epochs} epochs"
        return f"cold start: {self.reason}"


def _plain(config: PipelineConfig) -> bool:
    """Whether the whole model trains in one phase (no frozen body, or ``max_steps``), as training.fit decides."""
    return bool(config.train.max_steps) or not registry.has_pretrained_backbone(config)


def _heads(config: PipelineConfig) -> int:
    return 1 if _plain(config) else config.train.heads


def _fits(config: PipelineConfig) -> dict:
    """What a model's weights fit (the input contract and the feature settings fix the input shape)."""
    return json.loads(json.dumps({
        "family": config.train.model, "genres": list(config.genres), "input_contract": contract.input_contract(config),
        "features": dataclasses.asdict(config.features)}))


def fit_key(config: PipelineConfig) -> str:
    """A hash of :func:`_fits`: the base model's resolver considers only models of this key."""
    return hashlib.sha256(json.dumps(_fits(config), sort_keys=True).encode()).hexdigest()[:16]


def about(config: PipelineConfig) -> dict:
    """What a later run checks before it loads the weights: the key, and the heads (``--tune`` may choose them)."""
    return {**_fits(config), "key": fit_key(config), "heads": _heads(config)}


def save(model: keras.Model, config: PipelineConfig, start: Start, model_dir: str) -> None:
    """The trained weights and :func:`about` in ``<model_dir>/warm_start``: beside the SavedModel, not in it, since
    the Pusher copies the SavedModel only. ``start`` records how this model began."""
    folder = os.path.join(model_dir, FOLDER)
    tf.io.gfile.makedirs(folder)
    with tempfile.TemporaryDirectory() as tmp:  # h5 files are written locally, then copied (a bucket on Kubeflow)
        model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
        tf.io.gfile.copy(os.path.join(tmp, WEIGHTS_FILE), os.path.join(folder, WEIGHTS_FILE), overwrite=True)
    with tf.io.gfile.GFile(os.path.join(folder, ABOUT_FILE), "w") as f:
        json.dump({**about(config), "start": dataclasses.asdict(start)}, f, indent=1)


def _saved(model_dir: str) -> Optional[dict]:
    """What :func:`save` wrote in ``model_dir``, or None."""
    return live_examples.read_json(os.path.join(model_dir, FOLDER, ABOUT_FILE))


def recorded(model_dir: str) -> Optional[Start]:
    """How the model in ``model_dir`` began, or None where it saved nothing for warm starts."""
    saved = _saved(model_dir)
    return Start(**saved["start"]) if saved else None


def decide(config: PipelineConfig, base_model: Optional[str], model_dir: str) -> Start:
    """Warm when the champion's weights (``base_model``: TFX's path of its SavedModel) fit this run and it has seen
    none of this run's held-out tracks (``model_dir``: this run's Model folder, its track lists recorded)."""
    t = config.train
    if not t.warm_start_epochs:
        return Start(reason="warm start is off (--warm-start-epochs 0)")
    if not base_model:
        return Start(reason=f"no champion yet (no blessed {t.model} model of this label set and input trained on "
                            "other examples)")
    base = os.path.dirname(base_model.rstrip("/"))
    theirs = _saved(base)
    if theirs is None:
        return Start(reason=f"the champion ({base}) saved no weights for a warm start")
    mine = about(config)
    if theirs.get("key") != mine["key"]:  # a base model from elsewhere than base_model.WarmStartModelStrategy
        return Start(reason=f"the champion is a {theirs.get('family')} model of {len(theirs.get('genres', []))} "
                            "genres, not of this run's family, label set and input")
    if theirs["heads"] != mine["heads"]:
        return Start(reason=f"the champion averages {theirs['heads']} heads, this run trains {mine['heads']}")
    why = _held_out_seen(model_tracks.load(base), model_tracks.load(model_dir))
    return Start(reason=why) if why else Start(epochs=min(t.epochs, t.warm_start_epochs), base=base)


def _held_out_seen(theirs: Optional[dict], mine: Optional[dict]) -> Optional[str]:
    """Why the champion's weights would bring in this run's held-out tracks: its train tracks now in this run's
    eval or test split, or its eval tracks (which chose its epoch) now in the test split (a split that moved)."""
    if theirs is None or mine is None or theirs.get(model_tracks.IDENTITY_KEY) != mine.get(model_tracks.IDENTITY_KEY):
        return "whether the champion trained on this run's eval and test tracks is unknown (no comparable track lists)"
    seen = sorted((set(theirs.get(TRAIN, [])) & {*mine.get(EVAL, []), *mine.get(TEST, [])})
                  | (set(theirs.get(EVAL, [])) & set(mine.get(TEST, []))))
    if not seen:
        return None
    return (f"the champion has seen {len(seen)} of this run's eval and test tracks ({seen[0]}, ...; the split moved): "
            "its weights would carry them into the held-out scores")


def load(model: keras.Model, config: PipelineConfig, start: Start) -> tuple[Start, keras.Model, list[list[np.ndarray]]]:
    """``start``, the model to train and the extra heads' starting weights. Heads alone keep the pretrained body (the
    embeddings on disk are its); fine-tuning takes the champion's whole model; unfitting weights start cold."""
    if not start.epochs:
        return start, model, []
    body, head = (None, None) if _plain(config) else registry.split_backbone(model)
    extras = [keras.models.clone_model(head) for _ in range(_heads(config) - 1)]
    whole = transfer.average_heads(model, body, [head, *extras]) if extras else model
    heads_alone = body is not None and config.train.epochs <= config.train.frozen_epochs
    pretrained = body.get_weights() if heads_alone else None
    try:
        with tempfile.TemporaryDirectory() as tmp:  # h5 files are read locally
            tf.io.gfile.copy(os.path.join(start.base, FOLDER, WEIGHTS_FILE), os.path.join(tmp, WEIGHTS_FILE))
            whole.load_weights(os.path.join(tmp, WEIGHTS_FILE))
    except (ValueError, OSError, tf.errors.OpError) as error:
        detail = " ".join(str(error).split())[:160] or type(error).__name__
        return Start(reason=f"the champion's weights do not fit this run's layers ({detail})"), model, []
    if not heads_alone:
        return start, whole, []
    body.set_weights(pretrained)
    return start, model, [extra.get_weights() for extra in extras]


def with_budget(config: PipelineConfig, start: Start) -> PipelineConfig:
    """``config`` with the warm start's epochs; a fine-tuning family fine-tunes the champion at once (no head phase)."""
    if not start.epochs:
        return config
    fine_tunes = not _plain(config) and config.train.epochs > config.train.frozen_epochs
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, epochs=start.epochs, **({"frozen_epochs": 0} if fine_tunes else {})))
