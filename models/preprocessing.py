"""The TFX Transform ``preprocessing_fn``: raw int16 segments -> normalised model input. Its saved graph is the
only feature code in the serving model too, so serving sees what Transform computed (docs/contracts.md)."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from config.settings import GENRES, PipelineConfig
from models import audio, features
from synthetic.generator import render_track

LABEL_KEY = "label"
TRACK_ID_KEY = "track_id"
SEGMENT_INDEX_KEY = "segment_index"
AUDIO_KEY = "audio"
TOMBSTONE_KEY = "tombstone"


def _dense(x: Any) -> tf.Tensor:
    """A schema without a fixed shape gives VarLen (sparse) features: densify to [batch]."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return x


def normalise_per_bin(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """z-score each bin with its full-pass mean and variance; a bin that never varies is only centred, as tft does.

    The moments come from weighted sums (tft.sum, float64): an example of weight -1, a tombstone of a retired track,
    takes back exactly what its copy of weight 1 added in an earlier span, so analysing a new span with the cache of
    the earlier ones gives the moments of the live data. Non-finite values are left out, as tft.mean does."""
    bins = values.shape[-1]
    rows = tf.reshape(tf.cast(values, tf.float64), [-1, bins])
    per_row = tf.reshape(tf.broadcast_to(tf.reshape(tf.cast(weights, tf.float64), [-1, *[1] * (values.shape.rank - 2)]),
                                         tf.shape(values)[:-1]), [-1, 1])
    finite = tf.math.is_finite(rows)
    w = tf.where(finite, per_row, tf.zeros_like(rows))
    x = tf.where(finite, rows, tf.zeros_like(rows))
    count = tft.sum(w, reduce_instance_dims=False)
    mean = tft.sum(w * x, reduce_instance_dims=False) / count
    var = tft.sum(w * x * x, reduce_instance_dims=False) / count - mean * mean
    # The sums' rounding leaves a constant bin about 1e-16 * mean^2 of variance: below 1e-9 * mean^2 it is none.
    var = tf.where(var > 1e-9 * mean * mean, var, tf.zeros_like(var))
    mean, var = tf.cast(mean, tf.float32), tf.cast(var, tf.float32)
    centred = values - mean
    return tf.where(var > 0, centred * tf.math.rsqrt(tf.where(var > 0, var, 1.0)), centred)


def example_weights(inputs: Mapping[str, Any], batch: tf.Tensor) -> tf.Tensor:
    """[batch] float64: 1 for an example, -1 for a tombstone (components/audio_example_gen/spans.py)."""
    marked = inputs.get(TOMBSTONE_KEY)
    if marked is None:
        return tf.ones(tf.shape(batch)[:1], tf.float64)
    if isinstance(marked, tf.SparseTensor):
        marked = tf.sparse.reduce_sum(marked, axis=1)
    else:
        marked = tf.reduce_sum(tf.reshape(marked, [tf.shape(batch)[0], -1]), axis=1)
    return 1.0 - 2.0 * tf.cast(marked, tf.float64)


def raw_features(pcm: tf.Tensor, config: PipelineConfig) -> dict[str, tf.Tensor]:
    """int16 PCM segments [batch] -> every model input before the per-bin z-score: level, then the front ends."""
    waveform = audio.decode_pcm16(pcm, num_samples=config.audio.segment_samples)
    if config.features.level_dbfs is not None:
        waveform = audio.normalise_level(waveform, config.features.level_dbfs, config.features.max_level_gain_db)
    return features.compute_inputs(waveform, config.features, config.audio.sample_rate)


def preprocessing_fn(inputs: Mapping[str, Any], custom_config: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    """Transform's entry point: float32 [batch, frames, bins] per feature kind, plus label, track_id and
    segment_index; only ``audio`` feeds the features, so the serving graph can feed it alone."""
    config = PipelineConfig.from_json(custom_config["pipeline_config"])
    pcm = _dense(inputs[AUDIO_KEY])
    weights = example_weights(inputs, pcm)
    outputs = {kind: normalise_per_bin(values, weights) if features.is_zscored(kind) else values
               for kind, values in raw_features(pcm, config).items()}
    for key in (LABEL_KEY, TRACK_ID_KEY, SEGMENT_INDEX_KEY):
        if key in inputs:
            outputs[key] = _dense(inputs[key])
    return outputs


class NormalisationStats(NamedTuple):
    mean: np.ndarray  # [bins], in feature units (dB for the "db" log-mel)
    std: np.ndarray   # [bins]; 1 where Transform found no variance (it then only centres)


def normalisation_stats(tft_output: tft.TFTransformOutput, config: PipelineConfig, probes: int = 4,
                        seed: int = 0, kind: Optional[str] = None) -> NormalisationStats:
    """The per-bin mean and std Transform baked into its graph for ``kind`` (default ``features.kind``), recovered by
    regressing the transform layer's output on the raw features of a few probe segments (the normalisation is affine
    per bin)."""
    kind = kind or config.features.kind
    n = config.audio.segment_samples
    rng = np.random.default_rng(seed)
    levels = np.geomspace(1e-3, 0.5, probes - 1)
    # Silence, noise at several levels, and synthetic music of every genre: every feature bin varies among them.
    music = [render_track(genre, 0, seconds=n / config.audio.sample_rate + 0.1,
                          sample_rate=config.audio.sample_rate, seed=seed)[:n] for genre in GENRES]
    clips = np.concatenate([np.zeros((1, n)), levels[:, None] * rng.standard_normal((probes - 1, n)), music])
    clips = np.clip(clips, -1.0, 1.0).astype(np.float32)
    pcm = tf.constant([c.astype("<i2").tobytes() for c in np.round(clips * 32767).astype(np.int16)])
    raw = raw_features(pcm, config)[kind].numpy()
    layer = tft_output.transform_features_layer()
    try:  # audio as the curated schemas declare it (shape [1]), else as a scalar feature
        normalised = layer({AUDIO_KEY: tf.reshape(pcm, [-1, 1])})[kind].numpy()
    except ValueError:
        normalised = layer({AUDIO_KEY: pcm})[kind].numpy()
    bins = raw.shape[-1]
    f = raw.reshape(-1, bins).astype(np.float64)
    z = normalised.reshape(-1, bins).astype(np.float64)
    df, dz = f - f.mean(0), z - z.mean(0)
    dz2 = (dz * dz).sum(0)
    std = np.where(dz2 > 0, (df * dz).sum(0) / np.where(dz2 > 0, dz2, 1.0), 1.0)
    mean = (f - std * z).mean(0)
    return NormalisationStats(mean=mean.astype(np.float32), std=std.astype(np.float32))


def zscored_stats(tft_output: tft.TFTransformOutput, config: PipelineConfig) -> dict[str, NormalisationStats]:
    """:func:`normalisation_stats` of every model input Transform z-scores."""
    return {kind: normalisation_stats(tft_output, config, kind=kind)
            for kind in features.model_inputs(config.features) if features.is_zscored(kind)}
