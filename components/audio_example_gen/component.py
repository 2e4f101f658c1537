"""AudioExampleGen: a FileBasedExampleGen for GTZAN-style audio folders (modelled on TFX's presto_example_gen).

Subclassing keeps TFX's file-based driver behaviour (input fingerprint, span/version, Kubeflow V2 driver hook); the
spec adds the pipeline configuration and a second output, the quarantine report."""
from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from audio import discovery
from components import code_fingerprint
from components.audio_example_gen import executor, splits
from components.audio_example_gen.driver import AudioDriver
from components.audio_example_gen.quarantine import AudioQuarantine
from config.settings import INGESTION_SECTIONS, SPLITS, PipelineConfig


class AudioExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.PIPELINE_CONFIG_KEY: ExecutionParameter(type=str),
        "code": ExecutionParameter(type=str, optional=True)}
    OUTPUTS = {
        **standard_component_specs.FileBasedExampleGenSpec.OUTPUTS,
        executor.QUARANTINE_KEY: ChannelParameter(type=AudioQuarantine)}


def ingestion_code_fingerprint() -> str:
    """A hash of the code ingestion runs: TFX keys the cache on the executor's class name, not its code."""
    return code_fingerprint.function_fingerprint(f"{executor.__name__}.{executor.Executor.__name__}")


class AudioExampleGen(FileBasedExampleGen):
    """Audio files -> raw segment tf.Examples (docs/contracts.md) in train/eval/test, plus a quarantine report."""

    SPEC_CLASS = AudioExampleGenSpec
    DRIVER_CLASS = AudioDriver
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, input_base: str, pipeline_config_json: str, input_config: Optional[example_gen_pb2.Input] = None,
                 range_config: Optional[range_config_pb2.RangeConfig] = None):
        """``input_config`` overrides the input split derived from the layout under ``input_base``, the audio root."""
        # Only the sections ingestion reads, so that a change to, say, the epochs keeps cached examples.
        config = PipelineConfig.from_json(pipeline_config_json)
        config_json = config.to_json(INGESTION_SECTIONS)
        splits.validate(config.split)  # a bad protocol fails at build time
        input_config = input_config or example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="audio", pattern=discovery.input_pattern(input_base))])
        # hash_buckets are required by the proto but unused: splits are by track (splits.py).
        output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=1) for name in SPLITS]))
        spec = AudioExampleGenSpec(
            input_base=input_base, input_config=input_config, output_config=output_config, custom_config=None,
            range_config=range_config, output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP, pipeline_config_json=config_json,
            code=ingestion_code_fingerprint(), examples=types.Channel(type=standard_artifacts.Examples),
            quarantine=types.Channel(type=AudioQuarantine))
        # FileBasedExampleGen.__init__ would build its own spec without our parameter and output.
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
