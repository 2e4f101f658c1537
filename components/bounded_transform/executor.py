"""Transform's executor with a fixed number of examples per Beam batch.

TFX leaves Transform's batch size to ``beam.BatchElements``, which grows batches towards one second of work,
up to 1,000 examples. An audio segment's examples are large (the raw samples, the STFT's intermediate
tensors of about a megabyte each, the features), so a worker's peak memory rose with the size of the data
set until batches reached that cap: 2.7 GB of workers on 200 tracks, 4.4 GB from 2,000 tracks on
(BENCHMARKS.md, "Scaling to a music library"). A fixed batch of :data:`EXAMPLES_PER_BATCH` bounds it at
the same level for every library, and still hands TensorFlow enough examples a call to vectorise.
The transformed examples do not depend on the batch size.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.components.transform import executor as transform_executor

EXAMPLES_PER_BATCH = 64


class BoundedTransformProcessor(transform_executor.TransformProcessor):
    def _GetDesiredBatchSize(self, data_format: int, schema: schema_pb2.Schema) -> Optional[int]:  # noqa: N802
        """TFX's rule (1 for raw sequence examples), else the fixed batch size."""
        return super()._GetDesiredBatchSize(data_format, schema) or EXAMPLES_PER_BATCH


@contextlib.contextmanager
def _bounded_processor() -> Iterator[None]:
    """TFX's Executor.Do builds ``TransformProcessor()`` by its module's name, the one place the batch size is
    chosen; this swaps in the bounded processor for the call and puts TFX's back after it."""
    original = transform_executor.TransformProcessor
    transform_executor.TransformProcessor = BoundedTransformProcessor
    try:
        yield
    finally:
        transform_executor.TransformProcessor = original


class Executor(transform_executor.Executor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        with _bounded_processor():
            super().Do(input_dict, output_dict, exec_properties)
