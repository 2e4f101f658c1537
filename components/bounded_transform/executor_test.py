"""The fixed batch size reaches TFX's Transform, and the pipeline runs Transform with it."""
from __future__ import annotations

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.transform import executor as transform_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs as keys

from components.bounded_transform import executor as bounded
from config.settings import PipelineConfig
from pipeline.pipeline import create_pipeline


def test_examples_are_transformed_in_batches_of_a_fixed_size():
    processor = bounded.BoundedTransformProcessor()
    assert processor._GetDesiredBatchSize(example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE,
                                          schema_pb2.Schema()) == bounded.EXAMPLES_PER_BATCH
    # TFX's own processor leaves it to Beam: the bounded one is what changes it.
    assert transform_executor.TransformProcessor()._GetDesiredBatchSize(
        example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE, schema_pb2.Schema()) is None


def test_the_executor_uses_the_bounded_processor_during_its_call_only(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(transform_executor.Executor, "Do",
                        lambda self, *args: seen.append(transform_executor.TransformProcessor))
    artifacts = {}
    for key, kind in ((keys.EXAMPLES_KEY, standard_artifacts.Examples), (keys.TRANSFORM_GRAPH_KEY,
                      standard_artifacts.TransformGraph), (keys.TRANSFORMED_EXAMPLES_KEY, standard_artifacts.Examples)):
        artifacts[key] = kind()
        artifacts[key].uri = str(tmp_path / key / "1")
    bounded.Executor().Do({keys.EXAMPLES_KEY: [artifacts[keys.EXAMPLES_KEY]]},
                          {k: [a] for k, a in artifacts.items() if k != keys.EXAMPLES_KEY}, {})
    assert len(seen) == 1 and issubclass(seen[0], bounded.BoundedTransformProcessor)
    assert seen[0].work is None  # Examples written before spans: read as TFX reads them
    assert transform_executor.TransformProcessor is not bounded.BoundedTransformProcessor


def test_the_pipeline_runs_transform_with_the_bounded_executor_under_its_usual_id():
    nodes = {node.id: node for node in create_pipeline(PipelineConfig(), "/data", until="train").components}
    assert nodes["Transform"].executor_spec.executor_class is bounded.Executor
