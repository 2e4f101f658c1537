"""TrackedTrainer on Vertex AI worker pools: the step submits a custom job, then publishes as on one machine.

A Vertex AI Pipelines step is one container, so several machines means a custom job whose replicas each run
:class:`ReplicaExecutor`. What a replica sets on the Model artifact is not sent back, so the step publishes from the
files the chief wrote beside the model once the job has succeeded."""
from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.util import udf_utils
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor

from components.tracked_trainer.executor import publish
from models import distribute


class ReplicaExecutor(trainer_executor.GenericExecutor):
    """What each replica runs: TFX's Trainer on the chief, ``run_fn`` alone on the others (only the chief exports)."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        if distribute.cluster_from_tf_config().is_chief:
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        fn_args = self._GetFnArgs(input_dict, output_dict, exec_properties)
        udf_utils.get_fn(exec_properties, "run_fn")(fn_args)


class VertexExecutor(vertex_trainer_executor.GenericExecutor):
    """The step's executor: submit the custom job of :class:`ReplicaExecutor` replicas, wait, then publish."""

    def _GetExecutorClass(self) -> type:  # noqa: N802 (TFX's name)
        return ReplicaExecutor

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, exec_properties)  # raises unless the job succeeded
        publish(input_dict, output_dict, exec_properties)
