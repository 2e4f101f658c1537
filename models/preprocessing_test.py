"""preprocessing_fn through real tft_beam (DirectRunner) on tiny synthetic examples."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from config.settings import GENRES, AudioConfig, FeatureConfig, PipelineConfig
from models import audio, features, preprocessing
from synthetic.generator import render_track
from tests.testkit.tiny_transform import CONFIG, analyze_and_transform, raw_examples

def levelled(config: PipelineConfig, pcm: tf.Tensor) -> tf.Tensor:
    """PCM segments as float32, each brought to features.level_dbfs in NumPy."""
    waveform = audio.decode_pcm16(pcm, config.audio.segment_samples).numpy().astype(np.float64)
    rms = np.sqrt(np.mean((waveform - waveform.mean(axis=1, keepdims=True)) ** 2, axis=1, keepdims=True))
    target = 10 ** (config.features.level_dbfs / 20)
    waveform *= target / np.maximum(rms, target * 10 ** (-config.features.max_level_gain_db / 20))
    return tf.constant(waveform, tf.float32)


def untransformed(config: PipelineConfig, pcm: tf.Tensor) -> np.ndarray:
    """The front end's features of PCM segments, each brought to features.level_dbfs in NumPy first."""
    return features.compute(levelled(config, pcm), config.features, config.audio.sample_rate).numpy()


@pytest.mark.parametrize("kind,shape", [("log_mel", [1]), ("mfcc", [])])
def test_transform_normalises_per_bin_and_serves_from_audio_alone(kind, shape, tmp_path):
    config = dataclasses.replace(CONFIG, features=dataclasses.replace(CONFIG.features, kind=kind))
    rows = raw_examples(config, shape)
    pcm = tf.reshape(tf.constant([r["audio"] for r in rows]), [-1, *shape])
    transformed, transform_dir = analyze_and_transform(config, rows, str(tmp_path), shape)
    frames, bins = features.output_shape(config.features, config.audio.segment_samples)
    assert (frames, bins) == (12, 16 if kind == "log_mel" else 8)

    # Beam may reorder rows: match them back by their label and content.
    raw = untransformed(config, tf.reshape(pcm, [-1]))
    got = np.stack([np.asarray(t[kind], np.float32).reshape(frames, bins) for t in transformed])
    assert len(transformed) == len(rows) == 9
    labels = np.ravel([r["label"] for r in rows])
    assert sorted(int(np.squeeze(t["label"])) for t in transformed) == sorted(labels)
    assert {bytes(np.squeeze(t["track_id"])) for t in transformed} == set(np.ravel([r["track_id"] for r in rows]))

    mean = raw.reshape(-1, bins).mean(axis=0)
    std = raw.reshape(-1, bins).std(axis=0)
    expected = (raw - mean) / std
    order = [int(np.argmin([np.abs(g - e).max() for e in expected])) for g in got]
    assert sorted(order) == list(range(len(rows)))
    np.testing.assert_allclose(got, expected[order], atol=2e-4, rtol=1e-4)
    # Per-bin statistics of the output: mean 0, std 1 in every bin.
    np.testing.assert_allclose(got.reshape(-1, bins).mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(got.reshape(-1, bins).std(axis=0), 1.0, atol=1e-4)

    # Serving: the saved transform graph applied to {"audio"} alone, as models/signatures.py does.
    tft_output = tft.TFTransformOutput(transform_dir)
    spec = tft_output.transformed_feature_spec()
    assert spec[kind].shape == [frames, bins] and spec[kind].dtype == tf.float32
    assert spec["label"].dtype == tf.int64 and spec["track_id"].dtype == tf.string
    served = tft_output.transform_features_layer()({"audio": pcm})
    assert kind in served
    np.testing.assert_allclose(served[kind].numpy(), expected, atol=2e-4, rtol=1e-4)

    # The statistics read back from the graph are the ones Transform computed.
    stats = preprocessing.normalisation_stats(tft_output, config)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(stats.std, std, rtol=1e-3)


def test_tombstones_take_back_what_their_copies_added(tmp_path):
    """Analysing every example plus tombstones of some gives the statistics of the others alone, as the analyzers of
    a span chain must; serving still takes the audio alone."""
    rows = raw_examples(CONFIG, [1])
    live = [r for r in rows if r["label"] != [2]]
    retired = [r for r in rows if r["label"] == [2]]
    everything = [{**r, preprocessing.TOMBSTONE_KEY: []} for r in rows] + [
        {**r, preprocessing.TOMBSTONE_KEY: [1]} for r in retired]
    _, with_tombstones = analyze_and_transform(CONFIG, everything, str(tmp_path / "chain"), [1], tombstones=True)
    _, live_only = analyze_and_transform(CONFIG, live, str(tmp_path / "live"), [1])
    pcm = tf.reshape(tf.constant([r["audio"] for r in rows]), [-1, 1])
    got, want = (tft.TFTransformOutput(d).transform_features_layer()({"audio": pcm})["log_mel"].numpy()
                 for d in (with_tombstones, live_only))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert len(retired) == 3 and not np.allclose(got, tft.TFTransformOutput(
        analyze_and_transform(CONFIG, rows, str(tmp_path / "all"), [1])[1]).transform_features_layer()(
        {"audio": pcm})["log_mel"].numpy(), atol=1e-3)  # the retired examples do move the statistics


def test_kaldi_log_mel_is_mn04s_front_end_left_unscaled_and_served_as_transformed(tmp_path):
    """efficientat's kind: EfficientAT's own front end (not copied, not z-scored) in Transform, and the serving
    path (signatures.segment_features on the raw clip) feeds the model what Transform wrote for training."""
    from models import signatures
    from models.efficientat import frontend

    config = PipelineConfig(audio=AudioConfig(sample_rate=32000, segment_seconds=0.25, hop_seconds=0.25),
                            features=FeatureConfig(kind=features.KALDI_LOG_MEL))
    rows = raw_examples(config, [1])
    pcm = tf.constant([r["audio"][0] for r in rows])
    transformed, transform_dir = analyze_and_transform(config, rows, str(tmp_path), [1])
    frames, bins = features.output_shape(config.features, config.audio.segment_samples)
    assert (frames, bins) == (25, 128)  # 7999 samples after pre-emphasis, hop 320; 128 Kaldi mel bands
    expected = np.transpose(frontend(levelled(config, pcm)).numpy(), [0, 2, 1])
    got = np.stack([np.asarray(t[features.KALDI_LOG_MEL], np.float32).reshape(frames, bins) for t in transformed])
    order = [int(np.argmin([np.abs(g - e).max() for e in expected])) for g in got]
    assert sorted(order) == list(range(len(rows)))
    np.testing.assert_allclose(got, expected[order], atol=1e-4)
    assert np.abs(got.reshape(-1, bins).mean(axis=0)).max() > 0.1  # not centred: mn04's fixed scale as it is

    tft_output = tft.TFTransformOutput(transform_dir)
    stats = preprocessing.normalisation_stats(tft_output, config)
    np.testing.assert_allclose(stats.mean, 0.0, atol=1e-4)
    np.testing.assert_allclose(stats.std, 1.0, atol=1e-4)

    class Exported:  # what segment_features reads of the exported model: its transform layer
        tft_layer = tft_output.transform_features_layer()

    genre = GENRES[1]  # the second clip of raw_examples, sent whole at the model's rate
    clip = render_track(genre, 0, seconds=0.75, sample_rate=32000, seed=1)
    served = signatures.segment_features(Exported(), config, tf.constant(clip), tf.constant(32000)).numpy()
    mine = [i for i, r in enumerate(rows) if r["track_id"][0] == f"{genre}.00000".encode()]
    np.testing.assert_allclose(served, expected[mine], atol=1e-4)
