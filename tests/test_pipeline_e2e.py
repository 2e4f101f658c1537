"""End to end on synthetic data, through `local_runner.main` (the README's run command).

Real components throughout: LocalDagRunner, SQLite MLMD, Beam's DirectRunner, a real
`mlflow server` on 127.0.0.1, and real gRPC to the pushed SavedModel. The one stand-in
is the gRPC server: TF Serving's binary cannot be installed here, so
serving/stand_in_server.py (a labelled test double implementing TF Serving's
PredictionService) serves the pushed model directory.

Run 1 trains a good CNN: it must be blessed and pushed. Run 2 trains for one step: it
must be refused (below the bar and regressed against run 1) and the serving directory
must still hold only run 1's version. Run 3 repeats run 1: its model comes from the cache
and, being the released model already, is not pushed again.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import local_runner
from config.settings import GENRES
from models import metrics
from models.signatures import FEATURES_SIGNATURE
from synthetic.generator import render_track

TRACKS, SECONDS = 8, 6.0


def run_pipeline(tmp: str, mlflow_uri: str, *extra: str) -> dict:
    return local_runner.main([
        "--output-dir", tmp, "--mlflow-uri", mlflow_uri, "--model", "cnn",
        "--synthetic-tracks", str(TRACKS), "--synthetic-seconds", str(SECONDS),  # trains until the set is learnt
        "--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory", *extra])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mlflow_server):
    tmp = str(tmp_path_factory.mktemp("e2e"))
    first = run_pipeline(tmp, mlflow_server)
    versions_after_first = sorted(os.listdir(os.path.join(tmp, "serving", "genre")))
    second = run_pipeline(tmp, mlflow_server, "--max-steps", "1")
    third = run_pipeline(tmp, mlflow_server)  # the first run's settings again
    return {"tmp": tmp, "first": first, "second": second, "third": third,
            "versions_after_first": versions_after_first, "mlflow_uri": mlflow_server}


def test_first_run_is_blessed_and_pushed(two_runs):
    first = two_runs["first"]
    gate = first["gate"]
    assert gate["blessed"], gate["reasons"]
    assert gate["split"] == "test" and gate["split_protocol"] == "stratified"
    assert gate["candidate_clip_accuracy"] >= 0.6 and gate["candidate_segment_accuracy"] >= 0.6  # the bars
    assert first["pushed_to"].startswith(os.path.join(two_runs["tmp"], "serving", "genre"))
    assert len(two_runs["versions_after_first"]) == 1
    version_dir = os.path.join(two_runs["tmp"], "serving", "genre", two_runs["versions_after_first"][0])
    assert os.path.exists(os.path.join(version_dir, "saved_model.pb"))


def test_gate_reports_are_strict_json_with_consistent_per_genre_numbers(two_runs):
    from tests.testkit.gate_reports import assert_per_genre_consistent, strict_loads
    from pipeline.pipeline import TOP1_PREFIX

    reports = glob.glob(os.path.join(two_runs["tmp"], "pipeline_root", "ClipEvaluator", "blessing", "*",
                                     "clip_metrics.json"))
    parsed = []
    for path in reports:
        with open(path) as f:
            parsed.append(strict_loads(f.read()))  # no NaN or Infinity: absent figures are null
    for run in ("first", "second", "third"):  # each run's summary read its own report
        assert two_runs[run]["gate"] in parsed, run
    for data in parsed:
        assert data["genres"] == list(GENRES) and set(data["candidate_per_genre"]) == set(GENRES)
        assert_per_genre_consistent(data, "candidate_")
        if "baseline_per_genre" in data:
            assert_per_genre_consistent(data, "baseline_")
        # TFMA's per-genre recall is top-1: the accuracy of the genre's slice, also for run 2's
        # one-step model, which may never predict some genres.
        for genre in GENRES:
            assert data[f"test_overall_{TOP1_PREFIX}recall_{genre}"] == pytest.approx(
                data[f"test_genre_{genre}_sparse_categorical_accuracy"]), genre
    assert "baseline_per_genre" in two_runs["second"]["gate"]  # run 2 is compared with run 1, genre by genre


def test_worse_model_is_not_blessed_and_not_pushed(two_runs):
    second = two_runs["second"]
    gate = second["gate"]
    assert not gate["blessed"]
    assert any("regressed" in reason for reason in gate["reasons"]), gate["reasons"]
    assert "pushed_to" not in second
    serving = os.path.join(two_runs["tmp"], "serving", "genre")
    assert sorted(os.listdir(serving)) == two_runs["versions_after_first"]


def test_rerun_reuses_cached_model_and_does_not_push_it_again(two_runs):
    from components.clip_evaluator.executor import ALREADY_RELEASED

    third = two_runs["third"]
    assert third["mlflow_run_id"] == two_runs["first"]["mlflow_run_id"]  # the cached Trainer output
    assert third["gate"]["reasons"] == [ALREADY_RELEASED]
    serving = os.path.join(two_runs["tmp"], "serving", "genre")
    assert sorted(os.listdir(serving)) == two_runs["versions_after_first"]


def test_mlflow_run_has_parameters_metrics_artifacts_and_registry(two_runs):
    import mlflow
    from mlflow.tracking import MlflowClient

    from models.tracking import REGISTERED_MODEL, SERVING_ALIAS

    mlflow.set_tracking_uri(two_runs["mlflow_uri"])
    client = MlflowClient()
    run = client.get_run(two_runs["first"]["mlflow_run_id"])
    params = run.data.params
    assert params["train.model"] == "cnn" and params["features.kind"] == "log_mel"
    assert params["audio.sample_rate"] == "22050" and params["features.n_mels"] == "128"
    epochs = int(run.data.metrics["epochs_trained"])
    assert epochs >= 1
    history = sorted(client.get_metric_history(run.info.run_id, "val_accuracy"), key=lambda m: m.step)
    assert len(history) == epochs
    # The first run's default on the synthetic set: a stop before the preset's 30 epochs only once the eval
    # accuracy reached the bar on two epochs in a row (--stop-at-eval-accuracy).
    assert params["train.stop_at_eval_accuracy"] == "0.95"
    assert epochs == 30 or [m.value >= 0.95 for m in history[-2:]] == [True, True]
    gate = two_runs["first"]["gate"]
    assert run.data.metrics["candidate_clip_accuracy"] == pytest.approx(gate["candidate_clip_accuracy"])
    for genre, figures in gate["candidate_per_genre"].items():  # per-genre clip figures, "clip_recall/<genre>"
        for name in metrics.PER_GENRE_METRICS:
            assert run.data.metrics.get(f"{name}/{genre}") == (
                None if figures[name] is None else pytest.approx(figures[name])), (name, genre)
    assert run.data.metrics["blessed"] == 1.0
    assert run.data.tags["blessed"] == "true"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/learning_curves.png", "plots/eval_clip_confusion.png",
            "plots/test_clip_confusion.png"} <= artifacts
    assert "saved_model/saved_model.pb" in {a.path for a in client.list_artifacts(run.info.run_id, "saved_model")}
    champion = client.get_model_version_by_alias(REGISTERED_MODEL, SERVING_ALIAS)
    assert champion.run_id == run.info.run_id
    assert champion.tags["serving_version"] == two_runs["versions_after_first"][0]
    refused = client.get_run(two_runs["second"]["mlflow_run_id"])
    assert refused.data.tags["blessed"] == "false"


def test_mlmd_links_model_to_mlflow_run(two_runs):
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        os.path.join(two_runs["tmp"], "metadata.sqlite")))
    run_ids = {m.custom_properties["mlflow_run_id"].string_value for m in store.get_artifacts_by_type("Model")}
    assert {two_runs["first"]["mlflow_run_id"], two_runs["second"]["mlflow_run_id"]} <= run_ids


@pytest.fixture(scope="module")
def served(two_runs):
    from tests.testkit.serving import serving_endpoint

    with serving_endpoint(os.path.join(two_runs["tmp"], "serving", "genre"), model_name="genre") as host:
        yield host


def test_client_gets_right_genre_from_pushed_model(served):
    from serving.client import predict_waveform

    correct = 0
    for genre in GENRES:
        clip = render_track(genre, index=500, seconds=SECONDS, seed=7)  # a track no split has seen
        result = predict_waveform(clip, 22050, host=served, model="genre")
        correct += result.genre == genre
    assert correct >= 9, f"{correct}/10 genres right"


@pytest.mark.parametrize("waveform, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros(22050, np.float32), "short"),
    (np.full(22050 * 4, np.nan, np.float32), "finite"),
])
def test_bad_input_is_invalid_argument_and_server_keeps_serving(served, waveform, message):
    from serving.client import ModelInputError, predict_waveform

    with pytest.raises(ModelInputError, match="INVALID_ARGUMENT") as raised:
        predict_waveform(waveform, 22050, host=served, model="genre", retries=0)
    assert message in str(raised.value).lower()
    assert predict_waveform(render_track("metal", 501, 6.0, seed=7), 22050, host=served, model="genre").genre


def test_wrong_dtype_is_invalid_argument(served):
    from serving.client import ModelInputError, predict_waveform

    with pytest.raises(ModelInputError, match="INVALID_ARGUMENT"):
        predict_waveform(np.zeros(22050 * 4, np.int16), 22050, host=served, model="genre", retries=0)


def test_training_and_serving_features_agree(two_runs):
    """Skew: Transform's materialised features == the serving graph's, for the same audio."""
    import tensorflow_transform as tft  # noqa: F401  (registers the ops the transform graph uses)

    tmp = two_runs["tmp"]
    pushed = two_runs["first"]["pushed_to"]
    serving_features = tf.saved_model.load(pushed).signatures[FEATURES_SIGNATURE]
    transformed = sorted(glob.glob(os.path.join(tmp, "pipeline_root", "Transform", "transformed_examples", "*",
                                                "Split-test", "*")))
    raw = sorted(glob.glob(os.path.join(tmp, "pipeline_root", "AudioExampleGen", "examples", "*", "Split-test", "*")))
    raw_spec = {"audio": tf.io.FixedLenFeature([], tf.string), "track_id": tf.io.FixedLenFeature([], tf.string),
                "segment_index": tf.io.FixedLenFeature([], tf.int64)}
    by_track: dict[bytes, dict[int, bytes]] = {}
    for record in tf.data.TFRecordDataset(raw, compression_type="GZIP"):
        ex = tf.io.parse_single_example(record, raw_spec)
        by_track.setdefault(ex["track_id"].numpy(), {})[int(ex["segment_index"])] = ex["audio"].numpy()
    track_id, segments = sorted(by_track.items())[0]
    clip = np.concatenate([np.frombuffer(segments[i], "<i2") for i in sorted(segments)]).astype(np.float32) / 32768
    from_serving = serving_features(waveform=tf.constant(clip), sample_rate=tf.constant(22050))["features"].numpy()

    spec = {"log_mel": tf.io.FixedLenFeature(from_serving.shape[1:], tf.float32),
            "track_id": tf.io.FixedLenFeature([], tf.string), "segment_index": tf.io.FixedLenFeature([], tf.int64)}
    from_training = {int(ex["segment_index"]): ex["log_mel"].numpy() for ex in
                     (tf.io.parse_single_example(r, spec)
                      for r in tf.data.TFRecordDataset(transformed, compression_type="GZIP"))
                     if ex["track_id"].numpy() == track_id}
    assert sorted(from_training) == sorted(segments) == list(range(from_serving.shape[0]))
    for index, features in from_training.items():
        assert np.max(np.abs(from_serving[index] - features)) <= 1e-4, f"segment {index}"
