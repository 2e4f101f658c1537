"""ModelRegistrar: after Pusher, registers the pushed SavedModel as a new MLflow model version, points the serving
alias at it and tags its run with the TF Serving version and path, so a served version traces back to its run."""
from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.model_registrar import executor


class ModelRegistrarSpec(types.ComponentSpec):
    PARAMETERS = {"pipeline_config_json": ExecutionParameter(type=str)}
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}
    OUTPUTS = {}


class ModelRegistrar(base_component.BaseComponent):
    SPEC_CLASS = ModelRegistrarSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, pushed_model: types.BaseChannel, pipeline_config_json: str):
        super().__init__(spec=ModelRegistrarSpec(model=model, pushed_model=pushed_model,
                                                 pipeline_config_json=pipeline_config_json))
