"""The data half end to end: AudioExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator.

Real components, LocalDagRunner, MLMD on SQLite, tiny synthetic audio. Two runs:
- the project's wiring (pipeline.pipeline.create_pipeline, until="validate") on clean data:
  every stage runs and ExampleValidator finds no anomaly in any split;
- the same four components wired here with data ingested at 16 kHz but validated against
  the 22.05 kHz schema: ExampleValidator's anomalies name sample_rate and num_samples.
  (This run has no AnomalyGate, so the anomalies can be read instead of stopping the run.)
"""
from __future__ import annotations

import dataclasses
import os

import pytest
from google.protobuf import json_format
from ml_metadata.metadata_store import metadata_store
from tensorflow_data_validation.utils import anomalies_util
from tfx import v1 as tfx
from tfx.orchestration import metadata

from components.audio_example_gen.component import AudioExampleGen
from components.audio_example_gen.quarantine import SUMMARY_FILE, AudioQuarantine
from components.audio_example_gen.spans import RETIRED
from config.settings import SPLITS, PipelineConfig
from pipeline.beam_args import for_tfx
from synthetic.generator import generate

BEAM_IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("audio")
    generate(root, tracks_per_genre=3, seconds=3.5, seed=0)  # one 3 s segment per track
    return str(root)


def config_in(tmp_path, model: str = "cnn") -> PipelineConfig:
    config = PipelineConfig().with_model(model)
    config.paths = dataclasses.replace(config.paths, output_dir=str(tmp_path))
    config.beam_args = list(BEAM_IN_MEMORY)  # 2 shared cores: no worker processes for four tiny stages
    return config


def latest_artifact(metadata_path: str, type_name: str):
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))
    artifacts = store.get_artifacts_by_type(type_name)
    assert artifacts, f"no {type_name} artifact recorded in {metadata_path}"
    return max(artifacts, key=lambda a: a.id)


def anomalies_per_split(metadata_path: str) -> dict[str, dict[str, str]]:
    artifact = latest_artifact(metadata_path, "ExampleAnomalies")
    result = {}
    for split in SPLITS:
        anomalies = anomalies_util.load_anomalies_binary(os.path.join(artifact.uri, f"Split-{split}", "SchemaDiff.pb"))
        result[split] = {name: info.description for name, info in anomalies.anomaly_info.items()}
    return result


def blessed_per_split(metadata_path: str) -> dict[str, int]:
    """ExampleValidator's own verdict (custom property "blessed": 1 clean, 0 anomalies), per split."""
    value = latest_artifact(metadata_path, "ExampleAnomalies").custom_properties["blessed"]
    return {split: int(v) for split, v in json_format.MessageToDict(value.struct_value).items()}


def test_clean_data_passes_validation_with_the_project_wiring(data_root, tmp_path):
    from pipeline.pipeline import create_pipeline

    config = config_in(tmp_path)
    pipeline = create_pipeline(
        config, data_root, until="validate", enable_cache=False,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(config.metadata_path))
    tfx.orchestration.LocalDagRunner().run(pipeline)

    report = latest_artifact(config.metadata_path, AudioQuarantine.TYPE_NAME)
    with open(os.path.join(report.uri, SUMMARY_FILE)) as f:
        summary = f.read()
    assert '"ingested": 30' in summary and '"quarantined": 0' in summary
    assert anomalies_per_split(config.metadata_path) == {split: {} for split in SPLITS}
    assert blessed_per_split(config.metadata_path) == {split: 1 for split in SPLITS}


def test_wrong_sample_rate_makes_example_validator_report_anomalies(data_root, tmp_path):
    config = config_in(tmp_path, model="vgg")  # ingests at 16 kHz ...
    schema_22k = os.path.join(config_in(tmp_path, model="cnn").schema_dir, "schema.pbtxt")  # ... checks 22.05 kHz
    example_gen = AudioExampleGen(input_base=data_root, pipeline_config_json=config.to_json())
    # As the project wires them: a span's tombstones (its "retired" split) are copies, not data to validate.
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"], exclude_splits=[RETIRED])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_22k)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"], exclude_splits=[RETIRED])
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="data-validation-anomaly", pipeline_root=config.pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator], enable_cache=False,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(config.metadata_path),
        beam_pipeline_args=for_tfx(config.beam_args))
    tfx.orchestration.LocalDagRunner().run(pipeline)

    found = anomalies_per_split(config.metadata_path)
    for split in SPLITS:
        assert set(found[split]) == {"sample_rate", "num_samples"}, found[split]
        assert "16000" in found[split]["sample_rate"]
    assert blessed_per_split(config.metadata_path) == {split: 0 for split in SPLITS}


def test_anomaly_stops_the_project_pipeline_before_transform(data_root, tmp_path, monkeypatch):
    """The project's wiring to the Trainer, with data at 16 kHz checked against the 22.05 kHz schema:
    AnomalyGate fails the run, naming the anomalies, and Transform and Trainer never execute."""
    from components.anomaly_gate.executor import DataAnomaliesError
    from pipeline.pipeline import create_pipeline

    config = config_in(tmp_path, model="vgg")  # ingests at 16 kHz
    wrong_schema = PipelineConfig().with_model("cnn").schema_dir  # curated for 22.05 kHz
    monkeypatch.setattr(PipelineConfig, "schema_dir", property(lambda self: wrong_schema))
    pipeline = create_pipeline(
        config, data_root, until="train", enable_cache=False,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(config.metadata_path))

    with pytest.raises(DataAnomaliesError, match="sample_rate") as stopped:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    assert "num_samples" in str(stopped.value)
    assert not os.path.exists(os.path.join(config.pipeline_root, "Transform"))
    assert not os.path.exists(os.path.join(config.pipeline_root, "Trainer"))


def test_a_bad_file_is_set_aside_and_named_in_the_run_summary(data_root, tmp_path, capsys):
    """The README's run command on a root holding one text file named .wav: the run goes on
    without it, and the summary it returns and prints names the file, its reason and the report."""
    import shutil

    import local_runner

    root = tmp_path / "messy"
    shutil.copytree(data_root, root)
    (root / "jazz" / "jazz.00099.wav").write_text("not audio at all")
    summary = local_runner.main(["--data-root", str(root), "--output-dir", str(tmp_path / "out"), "--until",
                                 "validate", *(f"--beam-arg={arg}" for arg in BEAM_IN_MEMORY)])

    data = summary["data"]
    # Every entry of the root has a record: the generator's MANIFEST.json and .generating.json are excluded.
    assert data["files"] == {"discovered": 33, "ingested": 30, "quarantined": 1, "excluded": 2}
    assert data["excluded"] == {"hidden": 1, "not_audio_extension": 1}
    assert [(bad["path"], bad["reason"]) for bad in data["quarantined"]] == [("jazz/jazz.00099.wav", "not_audio")]
    assert sum(data["tracks"].values()) == 30
    assert os.path.exists(os.path.join(data["report"], SUMMARY_FILE))
    printed = capsys.readouterr().out
    assert "30 files ingested" in printed and "1 quarantined, 2 excluded (hidden 1, not_audio_extension 1)" in printed
    assert "quarantined jazz/jazz.00099.wav: not_audio" in printed
