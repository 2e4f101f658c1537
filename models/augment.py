"""Training-only augmentation of batches of Transform's per-bin normalised features: random gain, band shift,
SpecAugment masks (masked cells become 0, the bin mean) and mixup.

Every draw is stateless, seeded by (``TrainConfig.seed``, a fingerprint of the batch), so runs repeat under parallel
maps and each epoch gets new draws; tensorflow-io's masks use unseeded stateful ops (docs/features.md)."""
from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from config.settings import FeatureConfig, TrainConfig
from models.efficientat.log_mel import NORM_SCALE
from models.features import KALDI_LOG_MEL, dct_matrix

log = logging.getLogger(__name__)


def gain_scale(feature_config: FeatureConfig, bin_std: np.ndarray) -> np.ndarray:
    """Change of each normalised bin per dB of gain, [bins] float32, from Transform's per-bin std: the trainer
    never sees the waveform, so a gain is an offset of the features (for an MFCC, only c0 moves)."""
    per_db = 1.0 if feature_config.log == "db" else 0.1
    if feature_config.kind == "summary":
        # A gain is not an offset of every statistic (chroma, spectral shape): not modelled; the ann preset has none.
        return np.zeros(np.shape(bin_std), np.float32)
    if feature_config.kind == KALDI_LOG_MEL:
        # (ln(mel) + 4.5) / 5: a gain of 1 dB adds ln(10) / 10 to ln(mel); the kind is not z-scored (std 1).
        per_db = math.log(10.0) / 10.0 / NORM_SCALE
    if feature_config.kind == "mfcc":
        per_bin = per_db * dct_matrix(feature_config.n_mels, feature_config.n_mfcc,
                                      feature_config.dct_norm).astype(np.float64).sum(axis=0)
        per_bin[np.abs(per_bin) < 1e-6 * np.abs(per_bin).max()] = 0.0
    else:
        per_bin = np.full(feature_config.n_mels, per_db)
    std = np.asarray(bin_std, np.float64)
    return np.where(std > 0, per_bin / np.where(std > 0, std, 1.0), 0.0).astype(np.float32)


def batch_seeds(features: tf.Tensor, seed: int, count: int) -> tf.Tensor:
    """``count`` stateless seeds [count, 2] from the seed and a fingerprint of the batch."""
    digest = tf.fingerprint(tf.io.serialize_tensor(features)[tf.newaxis])[0]  # uint8 [8]
    content = tf.bitcast(digest, tf.int64)
    return tf.random.experimental.stateless_split(tf.stack([tf.constant(seed, tf.int64), content]), count)


def random_gain(features: tf.Tensor, max_db: float, scale: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Add g * scale per example, g ~ U(-max_db, max_db) dB."""
    g = tf.random.stateless_uniform(tf.shape(features)[:1], seed, -max_db, max_db)
    return features + g[:, tf.newaxis, tf.newaxis] * tf.cast(scale, features.dtype)


def _band(size: int, batch: tf.Tensor, param: int, seeds: tf.Tensor) -> tf.Tensor:
    """bool [batch, size]: per example a run of width ~ U{0..param} starting ~ U{0..size - width - 1}."""
    param = min(param, size - 1)  # leave room for the start, as tfio and the paper do
    width = tf.random.stateless_uniform([batch], seeds[0], 0, param + 1, dtype=tf.int32)
    start = tf.cast(tf.random.stateless_uniform([batch], seeds[1]) * tf.cast(size - width, tf.float32), tf.int32)
    index = tf.range(size)[tf.newaxis, :]
    return tf.logical_and(index >= start[:, tf.newaxis], index < (start + width)[:, tf.newaxis])


def spec_augment(features: tf.Tensor, freq_param: int, time_param: int, seeds: tf.Tensor) -> tf.Tensor:
    """One frequency and one time mask per example of [batch, frames, bins] (static frames and bins)."""
    frames, bins = features.shape[-2], features.shape[-1]
    if frames is None or bins is None:
        raise ValueError(f"spec_augment needs static frames and bins, got shape {features.shape}.")
    batch = tf.shape(features)[0]
    masked = tf.zeros(tf.shape(features), tf.bool)
    if freq_param > 0:
        masked = tf.logical_or(masked, _band(bins, batch, freq_param, seeds[:2])[:, tf.newaxis, :])
    if time_param > 0:
        masked = tf.logical_or(masked, _band(frames, batch, time_param, seeds[2:])[:, :, tf.newaxis])
    return tf.where(masked, tf.zeros_like(features), features)


def band_shift(features: tf.Tensor, max_bins: int, seed: tf.Tensor) -> tf.Tensor:
    """Shift each example along the bins by k ~ U{-max_bins..max_bins}, the edge bin repeated into the gap: on mel
    bands roughly a pitch shift, against the CNN learning the training artists' keys (docs/model-selection.md)."""
    bins = tf.shape(features)[2]
    shift = tf.random.stateless_uniform([tf.shape(features)[0], 1], seed, -max_bins, max_bins + 1, dtype=tf.int32)
    source = tf.clip_by_value(tf.range(bins)[tf.newaxis, :] - shift, 0, bins - 1)  # [batch, bins]
    by_bin = tf.transpose(features, [0, 2, 1])  # [batch, bins, frames]
    return tf.transpose(tf.gather(by_bin, source, batch_dims=1, axis=1), [0, 2, 1])


def mixup(features: tf.Tensor, labels: tf.Tensor, alpha: float, seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Blend each example with a random partner; lambda ~ Beta(alpha, alpha) from two gammas."""
    batch = tf.shape(features)[0]
    a = tf.random.stateless_gamma([batch], seeds[0], alpha)
    b = tf.random.stateless_gamma([batch], seeds[1], alpha)
    lam = a / tf.maximum(a + b, 1e-12)
    partner = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))
    lam_x = tf.reshape(lam, [-1, 1, 1])
    mixed = lam_x * features + (1.0 - lam_x) * tf.gather(features, partner)
    lam_y = tf.cast(lam[:, tf.newaxis], labels.dtype)
    return mixed, lam_y * labels + (1.0 - lam_y) * tf.gather(labels, partner)


def augment_batch(features: tf.Tensor, labels: tf.Tensor, train_config: TrainConfig,
                  gain_per_db: Optional[np.ndarray] = None,
                  num_classes: Optional[int] = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Augment a training batch [batch, frames, bins] for ``tf.data.Dataset.map``; without ``gain_per_db``
    (:func:`gain_scale`) the random gain is skipped with a warning, and mixup makes integer labels one-hot."""
    features = tf.convert_to_tensor(features, tf.float32)
    t = train_config
    seeds = batch_seeds(features, t.seed, 9)  # the band shift's seed is the ninth: the first eight are as before
    if t.random_gain_db > 0:
        if gain_per_db is None:
            log.warning("augment_batch: random_gain_db=%s ignored: pass gain_per_db=augment.gain_scale(config.features,"
                        " preprocessing.normalisation_stats(tft_output, config).std).", t.random_gain_db)
        else:
            features = random_gain(features, t.random_gain_db, tf.constant(gain_per_db, tf.float32), seeds[0])
    if t.band_shift > 0:
        features = band_shift(features, t.band_shift, seeds[8])
    if t.spec_augment:
        features = spec_augment(features, t.freq_mask_param, t.time_mask_param, seeds[1:5])
    if t.mixup_alpha > 0:
        if labels.dtype.is_integer:
            if num_classes is None:
                raise ValueError("augment_batch: integer labels with mixup need num_classes=len(config.genres).")
            labels = tf.one_hot(labels, num_classes)
        features, labels = mixup(features, tf.cast(labels, tf.float32), t.mixup_alpha, seeds[5:8])
    return features, labels
