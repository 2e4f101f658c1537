"""AudioExampleGen's component definition: spec, outputs, input pattern, configuration handling."""
from __future__ import annotations

import dataclasses
import json

import pytest
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

from components.audio_example_gen.component import AudioExampleGen
from components.audio_example_gen.executor import Executor
from components.audio_example_gen.quarantine import AudioQuarantine
from config.settings import PipelineConfig, SPLITS


def test_outputs_splits_and_beam_executor(tmp_path):
    component = AudioExampleGen(input_base=str(tmp_path), pipeline_config_json=PipelineConfig().to_json())
    assert isinstance(component, FileBasedExampleGen)  # TFX's file-based driver and Kubeflow V2 driver hook
    assert isinstance(component.executor_spec, executor_spec.BeamExecutorSpec)
    assert component.executor_spec.executor_class is Executor
    assert component.outputs["examples"].type_name == "Examples"
    assert component.outputs["quarantine"].type is AudioQuarantine
    output_config = proto_utils.json_to_proto(component.exec_properties["output_config"], example_gen_pb2.Output())
    assert tuple(s.name for s in output_config.split_config.splits) == SPLITS


@pytest.mark.parametrize("layout,pattern", [("", "*/*"), ("genres_original", "genres_original/*/*"),
                                            ("genres", "genres/*/*")])
def test_input_pattern_follows_the_layout(tmp_path, layout, pattern):
    (tmp_path / layout / "blues").mkdir(parents=True)
    component = AudioExampleGen(input_base=str(tmp_path), pipeline_config_json=PipelineConfig().to_json())
    input_config = proto_utils.json_to_proto(component.exec_properties["input_config"], example_gen_pb2.Input())
    assert [s.pattern for s in input_config.splits] == [pattern]


def test_only_audio_and_split_settings_reach_the_executor(tmp_path):
    base = PipelineConfig()
    more_epochs = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=99))
    a, b = (AudioExampleGen(input_base=str(tmp_path), pipeline_config_json=c.to_json()) for c in (base, more_epochs))
    # Same execution properties, so a training change does not invalidate cached ingestion.
    assert a.exec_properties["pipeline_config_json"] == b.exec_properties["pipeline_config_json"]
    parsed = PipelineConfig.from_json(a.exec_properties["pipeline_config_json"])
    assert parsed.audio == base.audio and parsed.split == base.split


def test_a_bad_split_configuration_fails_when_the_pipeline_is_built(tmp_path):
    config = PipelineConfig()
    config.split = dataclasses.replace(config.split, protocol="fault-filtered", split_dir=None)
    with pytest.raises(ValueError, match="split_dir"):
        AudioExampleGen(input_base=str(tmp_path), pipeline_config_json=config.to_json())
    with pytest.raises(ValueError, match="Unknown configuration key"):
        AudioExampleGen(input_base=str(tmp_path), pipeline_config_json=json.dumps({"audoi": {}}))
