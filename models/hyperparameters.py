"""The settings a tuning run may choose, and how its choice becomes the Trainer's configuration.

Kept apart from models/tuning.py so the Trainer needs no KerasTuner; a chosen value is a ``train.*`` setting."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from config.settings import PipelineConfig, TrainConfig

# KerasTuner's own bookkeeping in a trial's values (Hyperband's epochs and brackets): not settings.
OWN_PREFIX = "tuner/"
# A trial replaces the preset only when it gets more than this share of held-out clips more (another seed moves a
# clip or two, and the preset was chosen on more evidence).
PRESET_MARGIN = 0.01
TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def chosen(hyperparameters: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The settings in a best-hyperparameters artifact (``HyperParameters.get_config()``); {} if no Tuner ran."""
    if not hyperparameters:
        return {}
    values = hyperparameters.get("values", hyperparameters)
    return {name: value for name, value in values.items() if not name.startswith(OWN_PREFIX)}


def apply(config: PipelineConfig, values: Mapping[str, Any]) -> PipelineConfig:
    """``config`` with each chosen ``train.*`` setting; a name that is no setting is refused, not ignored."""
    unknown = sorted(set(values) - TRAIN_FIELDS)
    if unknown:
        raise ValueError(f"Hyperparameters {', '.join(unknown)} are no train settings; the search space "
                         "(models/tuning.py) and TrainConfig disagree.")
    if not values:
        return config
    typed = {name: type(getattr(config.train, name))(value) if getattr(config.train, name) is not None else value
             for name, value in values.items()}
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **typed))


def describe(values: Mapping[str, Any]) -> str:
    """``learning_rate 0.003, heads 5``: the chosen values in one line."""
    return ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in sorted(values.items()))
