"""The Trainer's base model for a warm start: the latest blessed model of this run's family, label set and input
(its ``warm_start_key``, models/warm_start.fit_key) that was not trained on the current examples.

Not TFX's LatestBlessedModelStrategy: TFX's cache keys include input artifacts, so an unchanged re-run would see
the model the last run blessed as a new base model and retrain; skipping the models trained on these examples
resolves the base model the cached Trainer had."""
from __future__ import annotations

from typing import Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx import v1 as tfx

MODEL_KEY, BLESSING_KEY, EXAMPLES_KEY = "model", "model_blessing", "examples"
KEY_PROPERTY = "warm_start_key"  # the Model artifact's custom property the Trainer's executor sets


def training_inputs(store: mlmd.MetadataStore, model_id: int) -> set[int]:
    """Ids of the input artifacts of the executions that output the model (its Trainer, and any cached copy)."""
    Event = metadata_store_pb2.Event  # noqa: N806 (the proto's name)
    producers = {e.execution_id for e in store.get_events_by_artifact_ids([model_id]) if e.type == Event.OUTPUT}
    return {e.artifact_id for e in store.get_events_by_execution_ids(sorted(producers)) if e.type == Event.INPUT}


class WarmStartModelStrategy(tfx.dsl.experimental.ResolverStrategy):
    """Inputs ``model`` and ``model_blessing`` (as LatestBlessedModelStrategy) and ``examples`` (this run's
    transformed examples); out: the newest blessed model of ``key`` none of whose producers read those examples."""

    def __init__(self, key: str) -> None:
        self.key = key

    def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
                          ) -> Optional[dict[str, list[types.Artifact]]]:
        blessings = {b.get_int_custom_property("current_model_id"): b for b in input_dict[BLESSING_KEY]
                     if b.get_int_custom_property("blessed") == 1}
        current = {a.id for a in input_dict.get(EXAMPLES_KEY, [])}
        for model in sorted(input_dict[MODEL_KEY], key=lambda a: a.id, reverse=True):
            if (model.id in blessings and model.get_string_custom_property(KEY_PROPERTY) == self.key
                    and not current & training_inputs(store, model.id)):
                return {**input_dict, MODEL_KEY: [model], BLESSING_KEY: [blessings[model.id]]}
        return {**input_dict, MODEL_KEY: [], BLESSING_KEY: []}
