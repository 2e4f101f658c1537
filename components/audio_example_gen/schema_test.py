"""The curated raw-data schemas (schemas/*/schema.pbtxt) against TFDV statistics of real ingestion output."""
from __future__ import annotations

import dataclasses
import glob
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions

from components.audio_example_gen.conftest import IN_MEMORY, run_executor
from config.settings import PipelineConfig

GENRES = PipelineConfig().genres  # the default label set
BEAM = PipelineOptions(IN_MEMORY)


def config_for(model: str) -> PipelineConfig:
    config = PipelineConfig().with_model(model)  # cnn: 22050 Hz, vgg: 16000 Hz; 3 s segments
    config.split = dataclasses.replace(config.split, protocol="hash")  # 2 tracks per genre: see make_config
    return config


@pytest.fixture(scope="module")
def ingested(synthetic_root, tmp_path_factory) -> dict[int, str]:
    """Examples of the synthetic tracks (one 3 s segment each), ingested at 22050 and at 16000 Hz."""
    out = {}
    for model in ("cnn", "vgg"):
        config = config_for(model)
        examples, _, error = run_executor(synthetic_root, config, tmp_path_factory.mktemp(model), IN_MEMORY)
        assert error is None
        out[config.audio.sample_rate] = os.path.join(examples.uri, "Split-*", "*.gz")
    return out


def anomalies(data_pattern: str, schema_path: str, stats_with_schema: bool) -> dict[str, str]:
    schema = tfdv.load_schema_text(schema_path)
    options = tfdv.StatsOptions(schema=schema) if stats_with_schema else tfdv.StatsOptions()
    stats = tfdv.generate_statistics_from_tfrecord(data_pattern, stats_options=options, pipeline_options=BEAM)
    found = tfdv.validate_statistics(stats, schema)
    return {name: info.description for name, info in found.anomaly_info.items()}


def schema_file(model: str) -> str:
    return os.path.join(config_for(model).schema_dir, "schema.pbtxt")


def test_schema_dir_resolves_for_both_rates():
    assert schema_file("cnn").endswith("schemas/22050hz_3s/schema.pbtxt")
    assert schema_file("vgg").endswith("schemas/16000hz_3s/schema.pbtxt")


@pytest.mark.parametrize("stats_with_schema", [False, True])
def test_clean_ingestion_output_has_no_anomalies(ingested, stats_with_schema):
    assert anomalies(ingested[22050], schema_file("cnn"), stats_with_schema) == {}
    assert anomalies(ingested[16000], schema_file("vgg"), stats_with_schema) == {}


def test_wrong_sample_rate_is_flagged(ingested):
    found = anomalies(ingested[16000], schema_file("cnn"), stats_with_schema=True)
    assert set(found) == {"sample_rate", "num_samples"}
    assert "16000" in found["sample_rate"] and "48000" in found["num_samples"]


def test_label_out_of_domain_is_flagged(ingested, tmp_path):
    records = [r.numpy() for r in tf.data.TFRecordDataset(glob.glob(ingested[22050]), compression_type="GZIP")]
    example = tf.train.Example.FromString(records[0])
    example.features.feature["label"].int64_list.value[0] = len(GENRES)  # 10: no such genre
    bad = str(tmp_path / "bad.tfrecord")
    with tf.io.TFRecordWriter(bad) as writer:
        for record in [example.SerializeToString(), *records[1:]]:
            writer.write(record)
    found = anomalies(bad, schema_file("cnn"), stats_with_schema=False)
    assert set(found) == {"label"} and "10" in found["label"]


def test_schema_pins_what_the_contract_says():
    schema = tfdv.load_schema_text(schema_file("cnn"))
    features = {f.name: f for f in schema.feature}
    # tombstone marks the copies a span's retired split holds (spans.py): optional, never in ingested examples.
    tombstone = features.pop("tombstone")
    assert tombstone.presence.min_count == 0 and not tombstone.presence.min_fraction and not tombstone.shape.dim
    assert set(features) == {"audio", "label", "genre", "track_id", "segment_index", "num_samples", "sample_rate",
                             "source_path"}
    for f in features.values():  # required, exactly one value (shape [1]: Transform parses it as a dense scalar)
        assert f.presence.min_fraction == 1.0 and [d.size for d in f.shape.dim] == [1], f.name
    assert (features["label"].int_domain.min, features["label"].int_domain.max) == (0, len(GENRES) - 1)
    assert (features["num_samples"].int_domain.min, features["num_samples"].int_domain.max) == (66150, 66150)
    assert list(tfdv.get_domain(schema, "genre").value) == list(GENRES)
