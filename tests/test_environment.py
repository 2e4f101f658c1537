"""The installed stack really works: each piece is exercised, not just imported."""
from __future__ import annotations

import os
import platform

import numpy as np
import pandas as pd
import pytest


def test_keras_2_is_active():
    assert os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    import tensorflow as tf
    import tf_keras

    assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__
    assert tf_keras.__version__.startswith("2.21")
    model = tf_keras.Sequential([tf_keras.layers.Dense(2, input_shape=(3,))])
    assert model(np.zeros((1, 3), np.float32)).shape == (1, 2)


def test_tfdv_infers_schema_and_validates_statistics():
    import tensorflow_data_validation as tfdv

    good = pd.DataFrame({"label": [0, 1, 2, 3] * 5, "genre": ["blues", "jazz", "rock", "pop"] * 5})
    schema = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(good))
    assert {f.name for f in schema.feature} == {"label", "genre"}
    assert not tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(good), schema).anomaly_info
    bad = pd.DataFrame({"label": [0, 1], "genre": ["blues", "polka"]})
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_dataframe(bad), schema)
    assert "genre" in anomalies.anomaly_info  # "polka" is outside the inferred domain


def test_mlmd_on_sqlite_stores_and_reads_an_artifact(tmp_path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(tmp_path / "mlmd.sqlite")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    artifact_type = metadata_store_pb2.ArtifactType(name="Model")
    artifact_type.properties["version"] = metadata_store_pb2.INT
    type_id = store.put_artifact_type(artifact_type)
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri="/models/1")
    artifact.properties["version"].int_value = 1
    [artifact_id] = store.put_artifacts([artifact])
    reopened = metadata_store.MetadataStore(config)
    [read] = reopened.get_artifacts_by_id([artifact_id])
    assert read.uri == "/models/1" and read.properties["version"].int_value == 1


@pytest.mark.parametrize("module", [
    "tensorflow_model_analysis", "tensorflow_transform", "tfx.v1", "mlflow", "librosa", "soundfile",
    "kfp.compiler", "tensorflow_serving.apis.prediction_service_pb2_grpc", "tensorflow_io",
])
def test_stack_imports(module):
    import importlib

    assert importlib.import_module(module) is not None


def test_versions_are_the_pinned_ones():
    from importlib.metadata import version

    assert version("tfx") == "1.21.0"
    assert version("tensorflow").startswith("2.21")
    assert version("tensorflow-io") == "0.37.1"


def test_soundfile_decodes_every_supported_format(tmp_path):
    import soundfile as sf

    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.float32)
    for ext, fmt in (("wav", "WAV"), ("au", "AU"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")):
        path = tmp_path / f"tone.{ext}"
        sf.write(path, tone, 22050, format=fmt)
        decoded, rate = sf.read(path, dtype="float32")
        assert rate == 22050 and abs(len(decoded) - len(tone)) < 2000, ext


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the glibc compatibility step only applies to glibc")
def test_glibc_compat_step_applied_only_where_needed():
    import ml_metadata
    import tensorflow_data_validation

    major, minor = (int(x) for x in platform.libc_ver()[1].split(".")[:2])
    shims = [os.path.join(os.path.dirname(ml_metadata.__file__), "metadata_store", "pywrap",
                          "libgenre_glibc_shim.so"),
             os.path.join(os.path.dirname(tensorflow_data_validation.__file__), "pywrap",
                          "libgenre_glibc_shim.so")]
    assert all(os.path.exists(s) for s in shims) == ((major, minor) < (2, 38))
