"""Each model family trains on the synthetic set through the real pipeline and is accurate
on held-out tracks.

`local_runner.main(--until train)` runs AudioExampleGen, TFDV, Transform and Trainer
(LocalDagRunner, SQLite MLMD, DirectRunner); the trained SavedModel is then scored on
the `test` split (stratified protocol: its tracks are in no other split) through its
`from_examples` signature, exactly as ClipEvaluator scores it: at least 90 % of held-out
clips right (and 80 % of their 3 s segments). The Trainer's wall time is read back from
its MLMD execution and printed, never asserted: speed is measured in bench/ (BENCHMARKS.md).
For the families added by issues 15 and 16 (ANN, EfficientNet, musicnn) the raw-audio `serving_default` signature
is also checked against `from_examples` on a held-out clip: the same segment scores. EfficientNet
from random initialisation gets a wiring test without the accuracy bar (see its docstring).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import soundfile as sf
import soxr
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.utils import path_utils

import local_runner
from components.clip_evaluator.executor import EVAL_SPLIT, predict, read_examples
from models import efficientnet, metrics
from pipeline.config import PathsConfig, PipelineConfig, SyntheticConfig
from pipeline.run_record import ingested_examples_of, open_store

TRACKS, SECONDS = 12, 12.0
# Epochs per family (early stopping may end the VGG sooner; the CNN and the LSTM run all theirs with a
# cosine decay): enough for the synthetic
# set, small enough for CI. VGG: up to the default 20 head epochs on frozen embeddings, then
# fine-tuning for the rest of the 22 (2 epochs: the head uses all 20 on this set). ANN: early stopping
# on the eval loss may end it sooner. EfficientNet: 1 epoch of the wiring test (no accuracy bar).
# musicnn: its preset (the head alone on frozen MSD_musicnn embeddings, class-balanced loss), 20 epochs;
# it shares the VGG's ExampleGen and Transform outputs (same features), so only its Trainer runs.
EPOCHS = {"cnn": 15, "lstm": 15, "vgg": 22, "ann": 20, "efficientnet": 1, "musicnn": 20}
# Served through serving_default and compared with from_examples (the older families: test_pipeline_e2e.py).
SERVED_CHECK = ("ann", "efficientnet", "musicnn")


def _artifact(cls, mlmd_artifact):
    artifact = cls()
    artifact.set_mlmd_artifact(mlmd_artifact)
    return artifact


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("families"))


def assert_served_like_examples(model_artifact, serialized, track_ids, probabilities, output_dir: str,
                                model_rate: int) -> None:
    """serving_default on one held-out clip's audio file gives from_examples' scores for its segments.

    The file is sent at the model's rate, resampled as AudioExampleGen resamples (soxr HQ), so the two
    paths see the same samples: the serving graph's own FFT resampler is close to soxr but not equal
    (up to 0.004 apart in a 16-kHz family's probabilities), and models/audio_test.py measures that.
    """
    parsed = tf.io.parse_example(list(serialized), {"source_path": tf.io.FixedLenFeature([], tf.string),
                                                    "segment_index": tf.io.FixedLenFeature([], tf.int64)})
    mine = np.flatnonzero(track_ids == track_ids[0])
    mine = mine[np.argsort(parsed["segment_index"].numpy()[mine])]
    root = PipelineConfig(paths=PathsConfig(output_dir=output_dir),
                          synthetic=SyntheticConfig(tracks_per_genre=TRACKS, seconds=SECONDS)).synthetic_data_root
    waveform, rate = sf.read(os.path.join(root, parsed["source_path"].numpy()[mine[0]].decode()), dtype="float32")
    if rate != model_rate:
        waveform, rate = soxr.resample(waveform, rate, model_rate, quality="HQ").astype(np.float32), model_rate
    serve = tf.saved_model.load(path_utils.serving_model_path(model_artifact.uri)).signatures["serving_default"]
    served = serve(waveform=tf.constant(waveform), sample_rate=tf.constant(rate, tf.int32))
    np.testing.assert_allclose(served["segment_scores"].numpy(), probabilities[mine], atol=1e-4)


def train_and_score(model: str, output_dir: str, epochs: int):
    """Run the pipeline to the Trainer; (model artifact, held-out examples, track ids, probabilities, scores)."""
    local_runner.main([
        "--output-dir", output_dir, "--model", model, "--until", "train",
        "--synthetic-tracks", str(TRACKS), "--synthetic-seconds", str(SECONDS), "--epochs", str(epochs),
        "--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory"])

    store = open_store(os.path.join(output_dir, "metadata.sqlite"))
    model_artifact = max(store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    examples = ingested_examples_of(store, model_artifact)
    [trainer_type] = [t.name for t in store.get_execution_types() if t.name.endswith(".Trainer")]
    trainer_run = max(store.get_executions_by_type(trainer_type), key=lambda e: e.id)
    trainer_seconds = (trainer_run.last_update_time_since_epoch - trainer_run.create_time_since_epoch) / 1000

    serialized, labels, track_ids = read_examples(_artifact(standard_artifacts.Examples, examples), EVAL_SPLIT)
    trained = _artifact(standard_artifacts.Model, model_artifact)
    probabilities = predict(trained, serialized)
    scores = metrics.score(track_ids, probabilities, labels)
    print(f"{model}: held-out segment accuracy {scores.segment_accuracy:.3f} ({scores.segments} segments), "
          f"clip accuracy {scores.clip_accuracy:.3f} ({scores.clips} clips); Trainer {trainer_seconds:.0f} s")
    return trained, serialized, track_ids, probabilities, scores


@pytest.mark.parametrize("model", ["cnn", "lstm", "vgg", "ann", "musicnn"])
def test_family_generalises_to_held_out_tracks(model, output_dir):
    trained, serialized, track_ids, probabilities, scores = train_and_score(model, output_dir, EPOCHS[model])
    # Clip (soft-vote) accuracy is what the served model answers; segments are 3 s excerpts.
    assert scores.clip_accuracy >= 0.9
    assert scores.segment_accuracy >= 0.8
    if model in SERVED_CHECK:
        assert_served_like_examples(trained, serialized, track_ids, probabilities, output_dir,
                                    PipelineConfig().with_model(model).audio.sample_rate)


def test_efficientnet_from_random_initialisation_trains_in_one_phase_and_serves(output_dir, monkeypatch):
    """The wiring without ImageNet weights, as on a machine that cannot download them (forced here).

    No accuracy bar: from random initialisation EfficientNetB0 did not reach 0.9 held-out clip
    accuracy on this set within a CI budget (0.70 after 16 epochs, 0.85 after 20 and 30 with the preset;
    README, "Known limitations"), so this checks what one epoch can show: the one line saying so, one
    training phase over the whole network, and the raw-audio signature answering like from_examples.
    """
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network (forced by the test)")
    monkeypatch.setattr(efficientnet.keras.utils, "get_file", offline)
    efficientnet.weights_source.cache_clear()
    try:
        trained, serialized, track_ids, probabilities, _ = train_and_score("efficientnet", output_dir,
                                                                           EPOCHS["efficientnet"])
    finally:
        efficientnet.weights_source.cache_clear()
    log = max(glob.glob(os.path.join(output_dir, "logs", "run-*.log")), key=os.path.getmtime)
    with open(log, errors="replace") as f:
        lines = [line for line in f if line.startswith("[train] ")]
    assert sum("efficientnet: random initialisation" in line for line in lines) == 1, lines
    assert not any(line.startswith("[train] head:") for line in lines), lines  # no frozen phase
    assert any(f"epoch {EPOCHS['efficientnet']}/{EPOCHS['efficientnet']}" in line for line in lines), lines
    assert probabilities.shape == (len(serialized), len(PipelineConfig().genres))
    assert_served_like_examples(trained, serialized, track_ids, probabilities, output_dir,
                                PipelineConfig().with_model("efficientnet").audio.sample_rate)
