"""The TFX Transform ``preprocessing_fn``: raw int16 segments -> normalised model input. Its saved graph is the
only feature code in the serving model too, so serving sees what Transform computed (docs/contracts.md)."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from config.settings import PipelineConfig
from models import audio, features

LABEL_KEY = "label"
TRACK_ID_KEY = "track_id"
SEGMENT_INDEX_KEY = "segment_index"
AUDIO_KEY = "audio"


def _dense(x: Any) -> tf.Tensor:
    """A schema without a fixed shape gives VarLen (sparse) features: densify to [batch]."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return x


def normalise_per_bin(values: tf.Tensor) -> tf.Tensor:
    """z-score each bin with its full-pass mean and variance; a bin that never varies is only centred, as tft does."""
    bins = values.shape[-1]
    rows = tf.reshape(values, [-1, bins])
    mean = tft.mean(rows, reduce_instance_dims=False)
    var = tft.var(rows, reduce_instance_dims=False)
    centred = values - mean
    return tf.where(var > 0, centred * tf.math.rsqrt(tf.where(var > 0, var, 1.0)), centred)


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
    outputs = {kind: normalise_per_bin(values) if features.is_zscored(kind) else values
               for kind, values in raw_features(_dense(inputs[AUDIO_KEY]), config).items()}
    for key in (LABEL_KEY, TRACK_ID_KEY, SEGMENT_INDEX_KEY):
        if key in inputs:
            outputs[key] = _dense(inputs[key])
    return outputs


class NormalisationStats(NamedTuple):
    mean: np.ndarray  # [bins], in feature units (dB for the "db" log-mel)
    std: np.ndarray   # [bins]; 1 where Transform found no variance (it then only centres)


def normalisation_stats(tft_output: tft.TFTransformOutput, config: PipelineConfig, probes: int = 4,
                        seed: int = 0) -> NormalisationStats:
    """The per-bin mean and std Transform baked into its graph for ``features.kind``, recovered by regressing the
    transform layer's output on the raw features of a few probe segments (the normalisation is affine per bin)."""
    n = config.audio.segment_samples
    rng = np.random.default_rng(seed)
    levels = np.geomspace(1e-3, 0.5, probes - 1)
    clips = np.concatenate([np.zeros((1, n)), levels[:, None] * rng.standard_normal((probes - 1, n))])
    clips = np.clip(clips, -1.0, 1.0).astype(np.float32)
    pcm = tf.constant([c.astype("<i2").tobytes() for c in np.round(clips * 32767).astype(np.int16)])
    raw = raw_features(pcm, config)[config.features.kind].numpy()
    layer = tft_output.transform_features_layer()
    try:  # audio as the curated schemas declare it (shape [1]), else as a scalar feature
        normalised = layer({AUDIO_KEY: tf.reshape(pcm, [-1, 1])})[config.features.kind].numpy()
    except ValueError:
        normalised = layer({AUDIO_KEY: pcm})[config.features.kind].numpy()
    bins = raw.shape[-1]
    f = raw.reshape(-1, bins).astype(np.float64)
    z = normalised.reshape(-1, bins).astype(np.float64)
    df, dz = f - f.mean(0), z - z.mean(0)
    dz2 = (dz * dz).sum(0)
    std = np.where(dz2 > 0, (df * dz).sum(0) / np.where(dz2 > 0, dz2, 1.0), 1.0)
    mean = (f - std * z).mean(0)
    return NormalisationStats(mean=mean.astype(np.float32), std=std.astype(np.float32))
