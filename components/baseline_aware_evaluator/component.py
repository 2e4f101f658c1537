"""BaselineAwareEvaluator: TFX's Evaluator that never compares models with different inputs; only the executor
differs, so Kubeflow compiles it unchanged."""
from __future__ import annotations

from typing import Any

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.baseline_aware_evaluator.executor import Executor


def BaselineAwareEvaluator(**evaluator_kwargs: Any) -> tfx.components.Evaluator:  # noqa: N802 (reads like a component)
    evaluator = tfx.components.Evaluator(**evaluator_kwargs)
    evaluator.executor_spec = executor_spec.BeamExecutorSpec(Executor)
    return evaluator
