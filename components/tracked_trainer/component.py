"""TrackedTrainer: the standard Trainer whose executor, after ``run_fn``, records the MLflow run id on the Model
artifact, so MLMD links every model to its run; it can also train as a Vertex AI custom job (vertex_executor.py)."""
from __future__ import annotations

from typing import Any, Mapping

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from components.tracked_trainer.executor import Executor


def TrackedTrainer(**trainer_kwargs: Any) -> tfx.components.Trainer:  # noqa: N802 (reads like a component)
    return tfx.components.Trainer(custom_executor_spec=executor_spec.ExecutorClassSpec(Executor), **trainer_kwargs)


def train_on_vertex_worker_pools(trainer: tfx.components.Trainer, vertex_config: Mapping[str, Any]) -> None:
    """Make a built TrackedTrainer submit a Vertex AI custom job (``vertex_config``: TFX's Vertex trainer keys)."""
    # Imported here: the Google Cloud clients it brings are not needed by a pipeline that trains in its step.
    from components.tracked_trainer.vertex_executor import VertexExecutor
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom_config = json_utils.loads(trainer.exec_properties.get(key) or "{}")
    trainer.exec_properties[key] = json_utils.dumps({**custom_config, **vertex_config})
    trainer.executor_spec = executor_spec.ExecutorClassSpec(VertexExecutor)
