"""TrackedTrainer: the standard Trainer with an executor that records the MLflow run.

Nothing about training changes: the executor runs the user's ``run_fn`` exactly as
TFX's GenericExecutor does, then copies the MLflow run id that ``run_fn`` wrote beside
the model into the Model artifact's custom properties, so MLMD links every model to
its MLflow run.
"""
from __future__ import annotations

from typing import Any

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.tracked_trainer.executor import Executor


def TrackedTrainer(**trainer_kwargs: Any) -> tfx.components.Trainer:  # noqa: N802 (reads like a component)
    return tfx.components.Trainer(custom_executor_spec=executor_spec.ExecutorClassSpec(Executor),
                                  **trainer_kwargs)
