"""BoundedTransform: TFX's Transform, node id ``Transform``, with executor.py's fixed batch size; all else is
the standard component's."""
from __future__ import annotations

from typing import Any

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.bounded_transform.executor import Executor


def BoundedTransform(**transform_kwargs: Any) -> tfx.components.Transform:  # noqa: N802 (reads like a component)
    transform = tfx.components.Transform(**transform_kwargs)
    transform.executor_spec = executor_spec.BeamExecutorSpec(Executor)
    return transform
