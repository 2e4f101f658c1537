"""TrackedTrainer: the standard Trainer with an executor that records the MLflow run.

Nothing about training changes: the executor runs the user's ``run_fn`` exactly as
TFX's GenericExecutor does, then copies the MLflow run id that ``run_fn`` wrote beside
the model into the Model artifact's custom properties, so MLMD links every model to
its MLflow run. :func:`train_on_vertex_worker_pools` makes the same component train as a
Vertex AI custom job on several machines, with the same tracking (vertex_executor.py).
"""
from __future__ import annotations

from typing import Any, Mapping

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.utils import json_utils

from components.tracked_trainer.executor import Executor


def TrackedTrainer(**trainer_kwargs: Any) -> tfx.components.Trainer:  # noqa: N802 (reads like a component)
    return tfx.components.Trainer(custom_executor_spec=executor_spec.ExecutorClassSpec(Executor),
                                  **trainer_kwargs)


def train_on_vertex_worker_pools(trainer: tfx.components.Trainer, vertex_config: Mapping[str, Any]) -> None:
    """Make a built TrackedTrainer submit a Vertex AI custom job instead of training in its own container.

    ``vertex_config``: the custom_config keys of TFX's Vertex trainer (``ai_platform_enable_vertex``,
    ``ai_platform_vertex_region``, ``ai_platform_training_args`` with the worker pools), added to the
    Trainer's own custom_config, which ``run_fn`` and the tracking keep reading as before.
    """
    # Imported here: the Google Cloud clients it brings are not needed by a pipeline that trains in its step.
    from components.tracked_trainer.vertex_executor import VertexExecutor

    key = standard_component_specs.CUSTOM_CONFIG_KEY
    custom_config = json_utils.loads(trainer.exec_properties.get(key) or "{}")
    trainer.exec_properties[key] = json_utils.dumps({**custom_config, **vertex_config})
    trainer.executor_spec = executor_spec.ExecutorClassSpec(VertexExecutor)
