"""Serving signatures of the exported model (contract: docs/contracts.md).

All of them run the same transform graph that Transform produced for training
(``model.tft_layer``), fed with segments cut and quantised exactly as ExampleGen cuts
and quantises them (models/audio.py): there is no second feature implementation to
drift from the first.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from models import audio
from pipeline.config import GENRES, PipelineConfig

DEFAULT_SIGNATURE = "serving_default"
WAV_SIGNATURE = "serving_wav"
EXAMPLES_SIGNATURE = "from_examples"
FEATURES_SIGNATURE = "segment_features"
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 192000


def attach_transform(model: keras.Model, tft_output: tft.TFTransformOutput) -> None:
    """Track the transform graph on the model so it is saved with it."""
    model.tft_layer = tft_output.transform_features_layer()


def _transformed(model: keras.Model, config: PipelineConfig, pcm_segments: tf.Tensor) -> tf.Tensor:
    # The raw schema declares every feature with shape [1], so the transform graph takes [batch, 1].
    return model.tft_layer({"audio": tf.reshape(pcm_segments, [-1, 1])})[config.features.kind]


def segment_features(model: keras.Model, config: PipelineConfig, waveform: tf.Tensor,
                     sample_rate: tf.Tensor) -> tf.Tensor:
    """Whole clip -> model input per segment: validate, resample, segment, transform."""
    sample_rate = tf.cast(sample_rate, tf.int32)
    tf.debugging.assert_greater_equal(sample_rate, MIN_SAMPLE_RATE, message="sample_rate is too low")
    tf.debugging.assert_less_equal(sample_rate, MAX_SAMPLE_RATE, message="sample_rate is too high")
    min_samples = tf.cast(tf.math.ceil(config.audio.segment_seconds * tf.cast(sample_rate, tf.float32)), tf.int32)
    with tf.control_dependencies(audio.validate_clip(waveform, min_samples, sample_rate)):
        waveform = tf.identity(waveform)
    waveform = audio.resample(waveform, sample_rate, config.audio.sample_rate)
    segments = audio.encode_pcm16_segments(waveform, config.audio.segment_samples, config.audio.hop_samples,
                                           config.audio.last_segment)
    return _transformed(model, config, segments)


def _classify_clip(model: keras.Model, config: PipelineConfig, waveform: tf.Tensor,
                   sample_rate: tf.Tensor) -> dict[str, tf.Tensor]:
    segment_scores = model(segment_features(model, config, waveform, sample_rate), training=False)
    scores = tf.reduce_mean(segment_scores, axis=0)
    genres = tf.constant(GENRES)
    return {"scores": scores, "genre": tf.gather(genres, tf.argmax(scores)),
            "segment_scores": segment_scores, "genres": genres}


def make_signatures(model: keras.Model, config: PipelineConfig) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Build the signatures; ``attach_transform`` must have been called.

    ``segment_features`` exposes what the serving path feeds the model, for skew checks.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")])
    def serve_waveform(waveform: tf.Tensor, sample_rate: tf.Tensor) -> dict[str, tf.Tensor]:
        return _classify_clip(model, config, waveform, sample_rate)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")])
    def serve_features(waveform: tf.Tensor, sample_rate: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"features": segment_features(model, config, waveform, sample_rate)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="wav_bytes")])
    def serve_wav(wav_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        decoded, sample_rate = tf.audio.decode_wav(wav_bytes)
        return _classify_clip(model, config, tf.reduce_mean(decoded, axis=1), sample_rate)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(examples, {"audio": tf.io.FixedLenFeature([], tf.string)})
        return {"probabilities": model(_transformed(model, config, parsed["audio"]), training=False)}

    return {
        DEFAULT_SIGNATURE: serve_waveform.get_concrete_function(),
        WAV_SIGNATURE: serve_wav.get_concrete_function(),
        EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
        FEATURES_SIGNATURE: serve_features.get_concrete_function(),
    }


def export(model: keras.Model, tft_output: tft.TFTransformOutput, config: PipelineConfig, path: str) -> None:
    """Save the model with its transform graph and signatures as a TF SavedModel."""
    attach_transform(model, tft_output)
    model.save(path, save_format="tf", signatures=make_signatures(model, config))

