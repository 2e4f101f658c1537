"""Transform's executor with a fixed number of examples per Beam batch.

TFX leaves the batch size to ``beam.BatchElements``, which grows batches up to 1,000 examples; audio examples are
large, so a worker's peak memory grew with the data set (BENCHMARKS.md, "Scaling to a music library"). A fixed
batch bounds it for every library; the transformed examples do not depend on it."""
from __future__ import annotations

from typing import Any, Optional
from unittest import mock

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.components.transform import executor as transform_executor

EXAMPLES_PER_BATCH = 64


class BoundedTransformProcessor(transform_executor.TransformProcessor):
    def _GetDesiredBatchSize(self, data_format: int, schema: schema_pb2.Schema) -> Optional[int]:  # noqa: N802
        """TFX's rule (1 for raw sequence examples), else the fixed batch size."""
        return super()._GetDesiredBatchSize(data_format, schema) or EXAMPLES_PER_BATCH


class Executor(transform_executor.Executor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        # TFX's Executor.Do builds ``TransformProcessor()`` by name: the bounded one stands in for the call.
        with mock.patch.object(transform_executor, "TransformProcessor", BoundedTransformProcessor):
            super().Do(input_dict, output_dict, exec_properties)
