"""The imported schema follows the label set: curated for GTZAN's ten, derived for any other."""
from __future__ import annotations

import dataclasses
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from config.settings import PathsConfig, PipelineConfig
from pipeline.schema import curated_schema_path, label_set_of, schema_file

GENRES3 = ("ambient", "drill", "polka")
BEAM = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory"])


def config(tmp_path, genres=None, model: str = "cnn") -> PipelineConfig:
    cfg = PipelineConfig().with_model(model)
    cfg.paths = PathsConfig(output_dir=str(tmp_path))
    return dataclasses.replace(cfg, genres=genres) if genres else cfg


def parse(path: str) -> schema_pb2.Schema:
    with open(path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


@pytest.mark.parametrize("model", ["cnn", "vgg"])
def test_default_label_set_imports_the_curated_file(tmp_path, model):
    cfg = config(tmp_path, model=model)
    assert schema_file(cfg) == curated_schema_path(cfg)
    assert not os.path.exists(os.path.join(cfg.pipeline_root, "schemas"))  # nothing derived


def test_other_genres_get_a_derived_schema_under_the_pipeline_root(tmp_path):
    cfg = config(tmp_path, GENRES3)
    path = schema_file(cfg)
    assert path.startswith(os.path.join(cfg.pipeline_root, "schemas") + "/") and path.endswith("/schema.pbtxt")
    derived, curated = parse(path), parse(curated_schema_path(cfg))
    assert label_set_of(derived) == (GENRES3, 0, 2)
    # Everything but the two domains is the curated schema's.
    for schema in (derived, curated):
        del schema.string_domain[:]
        next(f for f in schema.feature if f.name == "label").ClearField("int_domain")
    assert derived == curated
    # Deterministic (the cache holds), one file per label set, no temporary file left.
    assert schema_file(cfg) == path
    assert schema_file(config(tmp_path, GENRES3[:2])) != path
    assert [n for n in os.listdir(os.path.dirname(path))] == ["schema.pbtxt"]
    vgg = schema_file(config(tmp_path, GENRES3, model="vgg"))
    assert vgg != path and label_set_of(parse(vgg)) == (GENRES3, 0, 2)


def _examples(genres: tuple[str, ...], rate: int = 22050, samples: int = 66150) -> list[bytes]:
    """Two hand-built segments per genre, every feature of docs/contracts.md (audio: a few bytes)."""
    records = []
    for label, genre in enumerate(genres):
        for i in range(2):
            feature = {
                "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\x00\x01" * 8])),
                "genre": tf.train.Feature(bytes_list=tf.train.BytesList(value=[genre.encode()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "num_samples": tf.train.Feature(int64_list=tf.train.Int64List(value=[samples])),
                "sample_rate": tf.train.Feature(int64_list=tf.train.Int64List(value=[rate])),
                "segment_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                "source_path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{genre}/{genre}.0.wav".encode()])),
                "track_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{genre}.0".encode()])),
            }
            records.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return records


def test_tfdv_finds_no_anomaly_in_three_genre_data_against_the_derived_schema(tmp_path):
    cfg = config(tmp_path, GENRES3)
    data = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(data) as writer:
        for record in _examples(GENRES3):
            writer.write(record)
    stats = tfdv.generate_statistics_from_tfrecord(data, pipeline_options=BEAM)

    derived = tfdv.validate_statistics(stats, tfdv.load_schema_text(schema_file(cfg)))
    assert dict(derived.anomaly_info) == {}
    # The curated GTZAN schema rejects the same data: the test can fail.
    curated = tfdv.validate_statistics(stats, tfdv.load_schema_text(curated_schema_path(cfg)))
    assert set(curated.anomaly_info) == {"genre"}


def test_the_pipeline_imports_the_schema_of_its_label_set(tmp_path):
    from pipeline.pipeline import create_pipeline

    def imported(cfg: PipelineConfig) -> str:
        pipeline = create_pipeline(cfg, str(tmp_path / "data"), until="validate")
        [node] = [c for c in pipeline.components if c.id == "ImportSchemaGen"]
        return node.exec_properties["schema_file"]

    assert imported(config(tmp_path)) == curated_schema_path(config(tmp_path))
    assert imported(config(tmp_path, GENRES3)) == schema_file(config(tmp_path, GENRES3))
