"""Transform's executor with a fixed number of examples per Beam batch, over a chain of spans.

TFX leaves the batch size to ``beam.BatchElements``, which grows batches up to 1,000 examples; audio examples are
large, so a worker's peak memory grew with the data set (BENCHMARKS.md, "Scaling to a music library"). A fixed
batch bounds it for every library; the transformed examples do not depend on it.

Over a chain of spans (components/audio_example_gen/spans.py) the analyzers read every span's train and retired
splits, but TFT's analyzer cache, kept in the component's folder, holds the earlier spans' share, and only spans not
materialised before are transformed; ``live.json`` (models/live_examples.py) names every span's files and the
statistics they were normalised with. The folder stands in for TFX's ``analyzer_cache`` channel, whose input would
be new every run and defeat TFX's execution cache for an unchanged library."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Optional
from unittest import mock

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.components.transform import executor as transform_executor
from tfx.components.transform import executor_utils, labels
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from components import small_inputs
from components.audio_example_gen import spans
from config.settings import SPLITS, PipelineConfig
from models import live_examples, preprocessing

EXAMPLES_PER_BATCH = 64
ANALYZER_CACHE = "analyzer_cache"
MATERIALISED = "latest_materialised.json"
ANALYZED_SPLITS = ("train", spans.RETIRED)


@dataclasses.dataclass(frozen=True)
class SpanWork:
    """What this run reads: every span's analysed splits; the spans it transforms, into the output's files."""

    analyze: list[str]
    transform: dict[int, str]  # span -> its examples URI
    output_uri: str
    cache_dir: str


class BoundedTransformProcessor(transform_executor.TransformProcessor):
    work: Optional[SpanWork] = None  # set on a subclass per run: TFX builds the processor with no arguments

    def _GetDesiredBatchSize(self, data_format: int, schema: schema_pb2.Schema) -> Optional[int]:  # noqa: N802
        """TFX's rule (1 for raw sequence examples), else the fixed batch size."""
        return super()._GetDesiredBatchSize(data_format, schema) or EXAMPLES_PER_BATCH

    def Transform(self, inputs: dict[str, Any], outputs: dict[str, Any], status_file: str) -> None:  # noqa: N802
        """TFX's Transform with the chain's paths in place of the one artifact's."""
        work = self.work
        if work is not None:
            file_format = inputs[labels.ANALYZE_PATHS_FILE_FORMATS_LABEL][0]
            transform = [(os.path.join(uri, f"Split-{split}", "*"),
                          os.path.join(work.output_uri, f"Split-{split}", live_examples.file_prefix(span)))
                         for span, uri in sorted(work.transform.items()) for split in SPLITS]
            inputs = {**inputs, labels.ANALYZE_DATA_PATHS_LABEL: work.analyze,
                      labels.ANALYZE_PATHS_FILE_FORMATS_LABEL: [file_format] * len(work.analyze),
                      labels.TRANSFORM_DATA_PATHS_LABEL: [source for source, _ in transform],
                      labels.TRANSFORM_PATHS_FILE_FORMATS_LABEL: [file_format] * len(transform)}
            if tf.io.gfile.exists(work.cache_dir):
                inputs[labels.CACHE_INPUT_PATH_LABEL] = work.cache_dir
            outputs = {**outputs, labels.TRANSFORM_MATERIALIZE_OUTPUT_PATHS_LABEL: [out for _, out in transform]}
        super().Transform(inputs, outputs, status_file)


class Executor(transform_executor.Executor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
        chain = spans.read_chain(examples.uri)
        graph = artifact_utils.get_single_instance(output_dict[standard_component_specs.TRANSFORM_GRAPH_KEY])
        transformed = artifact_utils.get_single_instance(output_dict[standard_component_specs.TRANSFORMED_EXAMPLES_KEY])
        component_dir = os.path.dirname(os.path.dirname(graph.uri.rstrip("/")))
        work = None
        if chain.span:  # an artifact of spans (one written before them is read as TFX reads it)
            key = _materialisation_key(exec_properties, input_dict)
            earlier = _materialised(component_dir, key)
            analyze = [pattern for _, uri in sorted(chain.uris.items()) for split in ANALYZED_SPLITS
                       if _has_records(pattern := os.path.join(uri, f"Split-{split}", "*"))]
            todo = {span: uri for span, uri in chain.uris.items() if span not in earlier}
            work = SpanWork(analyze, todo, transformed.uri, os.path.join(component_dir, ANALYZER_CACHE))
            logging.info("Transform: analysing span %d of %d (TFT's cache holds the others'), transforming spans %s.",
                         chain.span, len(chain.uris), sorted(todo))
        self._beam_pipeline_args = small_inputs.beam_args_for(self._beam_pipeline_args, small_inputs.split_bytes(
            list(work.transform.values()) if work else [examples.uri], [*SPLITS, spans.RETIRED]))
        # TFX's Executor.Do builds ``TransformProcessor()`` by name, and one transformed artifact per input artifact:
        # the bounded processor, given the chain, stands in for both.
        processor = type("SpanTransformProcessor", (BoundedTransformProcessor,), {"work": work})
        with mock.patch.object(transform_executor, "TransformProcessor", processor), \
                mock.patch.object(executor_utils, "MatchNumberOfTransformedExamplesArtifacts", lambda *_: None):
            super().Do(input_dict, output_dict, exec_properties)
        if work is None:
            return
        added = _keep_cache(output_dict, work.cache_dir)
        analysed = sorted(span for span, uri in chain.uris.items()
                          if any(f"-{os.path.basename(uri.rstrip('/'))}-Split-" in name for name in added))
        for name, spans_of in (("spans", sorted(chain.uris)), ("spans_analysed", analysed),
                               ("spans_transformed", sorted(work.transform))):
            graph.set_string_custom_property(name, ", ".join(map(str, spans_of)))
        config = PipelineConfig.from_json(json.loads(exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY])
                                          ["pipeline_config"])
        stats = {kind: (s.mean.tolist(), s.std.tolist()) for kind, s in
                 preprocessing.zscored_stats(tft.TFTransformOutput(graph.uri), config).items()}
        files = [live_examples.SpanFiles(span, transformed.uri, stats) for span in work.transform]
        files += [live_examples.SpanFiles(**earlier[span]) for span in chain.uris if span in earlier]
        live_examples.write(transformed.uri, examples.uri, sorted(files, key=lambda f: f.span))
        transformed.span = chain.span
        with tf.io.gfile.GFile(os.path.join(component_dir, MATERIALISED), "w") as f:
            json.dump({"uri": transformed.uri, "key": key}, f)


def _has_records(pattern: str) -> bool:
    """Whether any file matching ``pattern`` holds a record: a span without tombstones has an empty retired split,
    which would cost Transform a dataset of its own."""
    files = tf.io.gfile.glob(pattern)
    return bool(files) and any(True for _ in tf.data.TFRecordDataset(files, compression_type="GZIP").take(1))


def _materialisation_key(exec_properties: dict[str, Any], input_dict: dict[str, list[types.Artifact]]) -> str:
    """What the transformed files of a span depend on besides its examples: the code and settings, the schema."""
    schema = artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])
    digest = hashlib.sha256()
    for name in (standard_component_specs.CUSTOM_CONFIG_KEY, standard_component_specs.PREPROCESSING_FN_KEY,
                 standard_component_specs.MODULE_FILE_KEY):
        digest.update(str(exec_properties.get(name)).encode() + b"\0")
    for path in sorted(tf.io.gfile.glob(os.path.join(schema, "*"))):
        digest.update(tf.io.gfile.GFile(path, "rb").read())
    return digest.hexdigest()[:16]


def _materialised(component_dir: str, key: str) -> dict[int, dict[str, Any]]:
    """span -> its SpanFiles fields, as the last run that materialised with this key left them."""
    latest = live_examples.read_json(os.path.join(component_dir, MATERIALISED))
    live = latest and latest["key"] == key and live_examples.read_json(
        os.path.join(latest["uri"], live_examples.LIVE_FILE))
    return {entry["span"]: entry for entry in live["spans"]} if live else {}


def _keep_cache(output_dict: dict[str, list[types.Artifact]], cache_dir: str) -> list[str]:
    """Copy the entries this run added to TFX's updated_analyzer_cache output into the component's cache folder
    (one per dataset analysed, named after its files); their names."""
    updated = executor_utils.GetCachePathEntry(standard_component_specs.UPDATED_ANALYZER_CACHE_KEY, output_dict)
    source = updated.get(labels.CACHE_OUTPUT_PATH_LABEL)
    if not source or not tf.io.gfile.exists(source):
        return []
    tf.io.gfile.makedirs(cache_dir)
    added = []
    for name in tf.io.gfile.listdir(source):
        name = name.rstrip("/")
        target = os.path.join(cache_dir, name)
        if not tf.io.gfile.exists(target):
            partial = f"{target}.partial-{os.getpid()}"
            io_utils.copy_dir(os.path.join(source, name), partial)
            tf.io.gfile.rename(partial, target)
            added.append(name)
    return added


def forget(component_dir: str) -> None:
    """The next run analyses and transforms every span anew."""
    for name in (MATERIALISED, ANALYZER_CACHE):
        path = os.path.join(component_dir, name)
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
