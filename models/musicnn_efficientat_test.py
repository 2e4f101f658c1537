"""The musicnn_efficientat family: two named inputs from one Transform, both bodies frozen, the cut at the joined
embedding, and an export whose serving graph (musicnn.ServingBody on one input) answers as the Keras layers.

mn04 has random weights here (``pretrained=False``; musicnn's first layers too), so CI needs no file; a training
run on the release weights is tests/test_mn04_families_e2e.py's.
"""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from config.settings import GENRES, PipelineConfig
from models import audio, features, musicnn, preprocessing, registry, signatures
from models import musicnn_efficientat as family
from models.training import model_input_shape
from synthetic.generator import render_track
from tests.testkit.tiny_transform import analyze_and_transform

CONFIG = PipelineConfig().with_model("musicnn_efficientat")
SHAPES = features.output_shapes(CONFIG.features, CONFIG.audio.segment_samples, CONFIG.audio.sample_rate)


def random_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {kind: rng.normal(size=(n, *shape)).astype("f") for kind, shape in SHAPES.items()}


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return family.build_musicnn_efficientat(SHAPES, len(GENRES), CONFIG.train, pretrained=False)


def test_the_preset_feeds_both_bodies_from_one_32_khz_ingestion():
    assert CONFIG.audio.sample_rate == 32000 and CONFIG.features.sample_rate == 16000
    assert CONFIG.features.band_limit_hz == 8000  # mn04's bands above 8 kHz hear nothing (features_test)
    assert features.model_inputs(CONFIG.features) == ("log_mel", "kaldi_log_mel")
    assert SHAPES == {"log_mel": (187, 96), "kaldi_log_mel": (300, 128)}
    assert CONFIG.train.epochs == CONFIG.train.frozen_epochs and CONFIG.train.heads == 5
    assert registry.has_pretrained_backbone(CONFIG) and registry.needs_input_stats(CONFIG)


def test_shapes_frozen_bodies_and_the_joined_embedding(model):
    assert model.name == family.NAME and sorted(model.input_names) == ["kaldi_log_mel", "log_mel"]
    assert {w.name.split("/")[0] for w in model.trainable_weights} == {"head_bn", "probabilities"}
    body, head = registry.split_backbone(model)
    assert body.output_shape == (None, 753 + 384) and head.input_shape == (None, 753 + 384)
    x = random_inputs(3, 1)
    np.testing.assert_allclose(head(body(x, training=False), training=False).numpy(),
                               model(x, training=False).numpy(), atol=1e-6)
    np.testing.assert_allclose(model(x, training=False).numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_the_serving_body_answers_as_the_keras_layers(model):
    x = random_inputs(2, 2)
    serving = musicnn.serving_function(model)
    np.testing.assert_allclose(serving({k: tf.constant(v) for k, v in x.items()}).numpy(),
                               model(x, training=False).numpy(), atol=1e-5)


def test_refuses_fine_tuning_and_other_inputs():
    with pytest.raises(ValueError, match="frozen bodies only"):
        family.build_musicnn_efficientat(SHAPES, 3, dataclasses.replace(CONFIG.train, epochs=30, frozen_epochs=20),
                                         pretrained=False)
    with pytest.raises(ValueError, match="takes the inputs"):
        family.build_musicnn_efficientat({"log_mel": (187, 96)}, 3, CONFIG.train, pretrained=False)


def test_one_transform_emits_both_inputs_and_the_export_serves_them(model, tmp_path):
    """Transform's two outputs: musicnn's log-mel of the segment resampled to 16 kHz, z-scored per bin, and mn04's
    Kaldi log-mel left as its front end computes it; the exported signatures feed them to the model by name."""
    a = CONFIG.audio
    rows = []
    for label, genre in enumerate(GENRES[:3]):  # a 3-s segment of three genres, as ExampleGen cuts them
        clip = render_track(genre, 0, seconds=a.segment_seconds, sample_rate=a.sample_rate, seed=1)
        segment = audio.encode_pcm16_segments(tf.constant(clip), a.segment_samples, a.hop_samples, a.last_segment)
        rows.append({"audio": [segment.numpy()[0]], "label": [label], "track_id": [genre.encode()]})
    pcm = tf.constant([row["audio"][0] for row in rows])
    transformed, transform_dir = analyze_and_transform(CONFIG, rows, str(tmp_path), [1])
    tft_output = tft.TFTransformOutput(transform_dir)
    assert model_input_shape(tft_output, CONFIG) == SHAPES
    raw = preprocessing.raw_features(pcm, CONFIG)
    kaldi = np.stack([row["kaldi_log_mel"] for row in transformed])
    np.testing.assert_allclose(np.sort(kaldi.ravel()), np.sort(raw["kaldi_log_mel"].numpy().ravel()), atol=1e-4)
    log_mel = np.stack([row["log_mel"] for row in transformed]).reshape(-1, 96)
    np.testing.assert_allclose(log_mel.mean(axis=0), 0.0, atol=1e-3)  # z-scored per bin over every frame

    export_dir = str(tmp_path / "export")
    signatures.export(model, tft_output, CONFIG, export_dir)
    loaded = tf.saved_model.load(export_dir)
    clip = tf.constant(np.concatenate([np.frombuffer(p, "<i2") for p in pcm.numpy()[:2]]) / 32768.0, tf.float32)
    served = loaded.signatures[signatures.FEATURES_SIGNATURE](waveform=clip, sample_rate=tf.constant(32000))
    assert served["features"].shape[1:] == (187, 96) and served["kaldi_log_mel"].shape[1:] == (300, 128)
    answer = loaded.signatures[signatures.DEFAULT_SIGNATURE](waveform=clip, sample_rate=tf.constant(32000))
    expected = model({"log_mel": served["features"], "kaldi_log_mel": served["kaldi_log_mel"]}, training=False)
    np.testing.assert_allclose(answer["segment_scores"].numpy(), expected.numpy(), atol=1e-5)
    examples = [tf.train.Example(features=tf.train.Features(feature={"audio": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[p]))})).SerializeToString() for p in pcm.numpy()[:2]]
    probabilities = loaded.signatures[signatures.EXAMPLES_SIGNATURE](examples=tf.constant(examples))["probabilities"]
    assert probabilities.shape == (2, len(GENRES))
