"""What the families' end-to-end tests share: train one family through the real pipeline on the synthetic
set, score its held-out tracks, and compare its raw-audio signature with ``from_examples``.

Three test modules use it, so that pytest-xdist can run them side by side, each with one ingestion:
tests/test_model_families_e2e.py (22.05 kHz: CNN, ANN, EfficientNet), tests/test_pretrained_families_e2e.py (MSD's
bodies at 16 kHz: VGG, LSTM, musicnn) and tests/test_mn04_families_e2e.py (mn04 at 32 kHz: efficientat,
musicnn_efficientat).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import soundfile as sf
import soxr
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.utils import path_utils

import local_runner
from components.clip_evaluator.executor import load_examples_signature, read_batches, score_split
from config.settings import GATE_SPLIT, PathsConfig, PipelineConfig, SyntheticConfig
from pipeline.run_record import ingested_examples_of, open_store

TRACKS = 12
# Seconds a track. The 22.05-kHz families (one ingestion) train from scratch and need the optimiser steps of four 3-s
# segments a track; the pretrained families' cost is their frozen body's pass over every segment, so two do.
SECONDS = {"cnn": 12.0, "ann": 12.0, "efficientnet": 12.0}
PRETRAINED_SECONDS = 6.0
# The VGG trains in two phases: its head on the frozen body's embeddings for VGG_HEAD_EPOCHS (--frozen-epochs), then
# one epoch of fine-tuning the whole network, the expensive phase (a minute an epoch here) whose path the test keeps.
VGG_HEAD_EPOCHS = 5
# Each family's budget of epochs. The synthetic set is learnt in a few, and each family test keeps its code path end
# to end and a learning signal on held-out tracks; how well a family learns real music is measured in the accuracy
# benchmark (`make accuracy`). LSTM, musicnn, efficientat and musicnn_efficientat: their presets' heads on the
# frozen bodies' outputs (two of them, HEADS), seconds an epoch.
EPOCHS = {"cnn": 15, "lstm": 15, "ann": 20, "efficientnet": 10, "musicnn": 20, "efficientat": 20,
          "musicnn_efficientat": 20, "vgg": VGG_HEAD_EPOCHS + 1}
# The families trained whole from the first epoch (no early stopping, a cosine decay) stop once the eval split's
# segment accuracy reaches this on two epochs in a row (--stop-at-eval-accuracy), as the first run on the synthetic
# set does. Not the heads: early stopping restores their best eval loss, which a stop after a few epochs leaves early.
STOP_AT = {"cnn": 0.95, "efficientnet": 0.95}
# The presets' learning rates but EfficientNet's: from random initialisation it learns this set at 5e-3
# (docs/model-selection.md, "EfficientNet"; the real clips' eval split keeps the preset at 2e-3).
LEARNING_RATE = {"efficientnet": 5e-3}
# A family whose preset averages several heads trains two here: the average, exported and served, is what the
# bars judge, and each further head is another run of epochs on the same embeddings.
HEADS = 2
# The bars on held-out tracks: clips (soft vote, what the served model answers) and their 3-s segments. The families
# that train a whole network (EfficientNet from random initialisation, the VGG's fine-tuning) run too few epochs here to
# learn the set whole; their bar is a learning signal, five times chance (0.1 on ten genres) for clips. So is the
# pair of bodies': on 6-s tracks its heads' eval loss is lowest after two epochs, which early stopping restores (0.8
# of the test clips); on 12-s tracks it learnt the set whole (1.000) with two body passes twice as long.
BARS = (0.9, 0.8)
LEARNING_SIGNAL = (0.5, 0.4)
BARS_FOR = {"efficientnet": LEARNING_SIGNAL, "vgg": LEARNING_SIGNAL, "musicnn_efficientat": LEARNING_SIGNAL}
# Served through serving_default and compared with from_examples: the families the CNN's e2e test does not serve (the
# CNN's raw-audio path is served over gRPC in tests/test_pipeline_e2e.py).
SERVED_CHECK = ("ann", "efficientnet", "musicnn", "efficientat", "musicnn_efficientat")


def seconds(model: str) -> float:
    """Seconds a synthetic track for ``model``'s test set (:data:`SECONDS`)."""
    return SECONDS.get(model, PRETRAINED_SECONDS)


def train_lines(output_dir: str) -> list[str]:
    """The ``[train]`` lines of the newest run's log in ``output_dir``: what the Trainer said it did."""
    log = max(glob.glob(os.path.join(output_dir, "logs", "run-*.log")), key=os.path.getmtime)
    with open(log, errors="replace") as f:
        return [line.rstrip() for line in f if line.startswith("[train] ")]


def _artifact(cls, mlmd_artifact):
    artifact = cls()
    artifact.set_mlmd_artifact(mlmd_artifact)
    return artifact


def first_track_segments(examples, model_artifact) -> tuple[list[bytes], np.ndarray]:
    """The held-out split's first track: its serialized segments and from_examples' scores for them."""
    first, segments = None, []
    for serialized, _, track_ids in read_batches(examples, GATE_SPLIT):
        first = track_ids[0] if first is None else first
        segments += [record for record, track in zip(serialized.numpy(), track_ids) if track == first]
    _loaded, signature = load_examples_signature(model_artifact)
    return segments, signature(examples=tf.constant(segments))["probabilities"].numpy()


def assert_served_like_examples(model: str, model_artifact, examples, output_dir: str) -> None:
    """serving_default on one held-out clip's audio file gives from_examples' scores for its segments.

    The file is sent at the model's rate, resampled as AudioExampleGen resamples (soxr HQ), so the two
    paths see the same samples: the serving graph's own FFT resampler is close to soxr but not equal
    (up to 0.004 apart in a 16-kHz family's probabilities), and models/audio_test.py measures that.
    """
    serialized, probabilities = first_track_segments(examples, model_artifact)
    parsed = tf.io.parse_example(serialized, {"source_path": tf.io.FixedLenFeature([], tf.string),
                                              "segment_index": tf.io.FixedLenFeature([], tf.int64)})
    mine = np.argsort(parsed["segment_index"].numpy())
    model_rate = PipelineConfig().with_model(model).audio.sample_rate
    root = PipelineConfig(paths=PathsConfig(output_dir=output_dir), synthetic=SyntheticConfig(
        tracks_per_genre=TRACKS, seconds=seconds(model))).synthetic_data_root
    waveform, rate = sf.read(os.path.join(root, parsed["source_path"].numpy()[mine[0]].decode()), dtype="float32")
    if rate != model_rate:
        waveform, rate = soxr.resample(waveform, rate, model_rate, quality="HQ").astype(np.float32), model_rate
    serve = tf.saved_model.load(path_utils.serving_model_path(model_artifact.uri)).signatures["serving_default"]
    served = serve(waveform=tf.constant(waveform), sample_rate=tf.constant(rate, tf.int32))
    np.testing.assert_allclose(served["segment_scores"].numpy(), probabilities[mine], atol=1e-4)


def train_and_score(model: str, output_dir: str, epochs: int):
    """Run the pipeline to the Trainer; (model artifact, ingested examples, held-out scores)."""
    several_heads = PipelineConfig().with_model(model).train.heads > 1
    local_runner.main([
        "--output-dir", output_dir, "--model", model, "--until", "train",
        "--synthetic-tracks", str(TRACKS), "--synthetic-seconds", str(seconds(model)), "--epochs", str(epochs),
        *(["--stop-at-eval-accuracy", str(STOP_AT[model])] if model in STOP_AT else []),
        *(["--learning-rate", str(LEARNING_RATE[model])] if model in LEARNING_RATE else []),
        *(["--frozen-epochs", str(VGG_HEAD_EPOCHS)] if model == "vgg" else []),
        *(["--heads", str(HEADS)] if several_heads else []),
        "--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory"])

    store = open_store(os.path.join(output_dir, "metadata.sqlite"))
    model_artifact = max(store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    examples = ingested_examples_of(store, model_artifact)
    [trainer_type] = [t.name for t in store.get_execution_types() if t.name.endswith(".Trainer")]
    trainer_run = max(store.get_executions_by_type(trainer_type), key=lambda e: e.id)
    trainer_seconds = (trainer_run.last_update_time_since_epoch - trainer_run.create_time_since_epoch) / 1000

    examples = _artifact(standard_artifacts.Examples, examples)
    trained = _artifact(standard_artifacts.Model, model_artifact)
    [scored] = score_split(examples, GATE_SPLIT, [trained])
    scores = scored.score()
    print(f"{model}: held-out segment accuracy {scores.segment_accuracy:.3f} ({scores.segments} segments), "
          f"clip accuracy {scores.clip_accuracy:.3f} ({scores.clips} clips); Trainer {trainer_seconds:.0f} s")
    return trained, examples, scores


def assert_family_generalises(model: str, output_dir: str) -> None:
    """The family's bars on held-out tracks (:data:`BARS`, :data:`BARS_FOR`): clips (soft vote, what the served model
    answers) and their 3-s segments; for :data:`SERVED_CHECK`, its raw-audio signature answers like
    ``from_examples``."""
    trained, examples, scores = train_and_score(model, output_dir, EPOCHS[model])
    clips, segments = BARS_FOR.get(model, BARS)
    assert scores.clip_accuracy >= clips, scores
    assert scores.segment_accuracy >= segments, scores
    if model in SERVED_CHECK:
        assert_served_like_examples(model, trained, examples, output_dir)
