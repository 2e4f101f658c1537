"""Trainer executor that publishes the MLflow run id, the input contract, the tracks seen and how training began
(models/warm_start.py) on the Model artifact."""
from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils

from components import contract, model_tracks
from components.tracked_trainer import base_model
from config.settings import PipelineConfig
from models import live_examples, training, warm_start
from models.tracking import RUN_ID_FILE, RUN_ID_PROPERTY


EMBEDDED_PROPERTY = "segments_embedded"


def publish(input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
            exec_properties: dict[str, Any]) -> None:
    """After training: the run id, the input contract, the tracks seen and how the model began. Runs in the step's
    own process: what a Vertex AI job's replicas set on the artifact is not sent back."""
    model = artifact_utils.get_single_instance(output_dict["model"])
    path = os.path.join(model.uri, RUN_ID_FILE)
    if tf.io.gfile.exists(path):
        model.set_string_custom_property(RUN_ID_PROPERTY, tf.io.gfile.GFile(path).read().strip())
    custom_config = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    config = PipelineConfig.from_json(custom_config["pipeline_config"])
    model.set_string_custom_property(contract.MODEL_PROPERTY, contract.input_contract(config))
    model.set_string_custom_property(base_model.KEY_PROPERTY, warm_start.fit_key(config))  # how a warm start finds it
    if not tf.io.gfile.exists(os.path.join(model.uri, model_tracks.TRACKS_FILE)):  # not recorded before training
        record_tracks(input_dict, output_dict)
    run = artifact_utils.get_single_instance(output_dict[standard_component_specs.MODEL_RUN_KEY])
    counts = live_examples.read_json(os.path.join(run.uri, training.FROZEN_BODY_FILE))
    if counts is not None:  # the frozen body's pass: segments embedded of those the heads trained on
        model.set_string_custom_property(EMBEDDED_PROPERTY, f"{counts['embedded']:,} of {counts['segments']:,}")
    start = warm_start.recorded(model.uri)
    if start is not None:  # how the model began: warm from the base model (by its MLMD id), or cold and why
        bases = input_dict.get(standard_component_specs.BASE_MODEL_KEY) or []
        model.set_string_custom_property(warm_start.PROPERTY, start.describe(f"model {bases[0].id}" if bases else ""))


def record_tracks(input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]]) -> None:
    """The tracks of each split of the examples, beside the model, not in it: the Pusher copies only the SavedModel."""
    examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
    model_tracks.record(artifact_utils.get_single_instance(output_dict["model"]).uri, examples)


class Executor(trainer_executor.GenericExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        if input_dict.get(standard_component_specs.BASE_MODEL_KEY):
            record_tracks(input_dict, output_dict)  # before training: run_fn checks the base model against them
        super().Do(input_dict, output_dict, exec_properties)
        publish(input_dict, output_dict, exec_properties)
