"""Training-only augmentation of batches of transformed features (never in the serving graph).

Operates on what the trainer reads: Transform's per-bin normalised features
[batch, frames, bins], where 0 is each bin's mean. In order:

1. random gain: a clip played louder or softer by g dB (uniform in +-random_gain_db).
   For the dB log-mel, gain is exactly an offset of g dB in every bin (ref 1.0, and the
   per-example top_db floor moves with the maximum), i.e. g / std_b in normalised units.
   It is applied there, on the features, because the trainer never sees the waveform;
   :func:`gain_scale` turns Transform's per-bin std into that per-dB offset. With
   ``features.level_dbfs`` set (the default) a real gain no longer reaches the features, and
   the offset acts as a regulariser; the presets were measured with it.
2. SpecAugment: one frequency mask (width 0..freq_mask_param bins) and one time mask
   (width 0..time_mask_param frames) per example, start uniform over the positions where
   the mask fits (Park et al. 2019, and tensorflow-io's ``freq_mask`` / ``time_mask``).
   Masked cells become 0, the bin mean.
3. mixup (mixup_alpha > 0): each example blended with another of the batch with weight
   lambda ~ Beta(alpha, alpha); labels blended alike, so they must be (or become) one-hot.

Every draw is a stateless random op seeded by (``TrainConfig.seed``, a fingerprint of the
batch): a batch's augmentation is a pure function of its content and the seed, so runs
are reproducible even under ``map(num_parallel_calls=AUTOTUNE, deterministic=False)``,
and each epoch's reshuffled batches get new draws. tensorflow-io's masks build core ops
only, but they draw from unseeded stateful ops: under a global seed they repeat the same
masks every epoch, and inside a batch their order is not reproducible
(docs/features.md), so the same masks are built here from stateless draws.
"""
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
    """Change of each normalised feature bin per dB of gain, [bins] float32.

    ``bin_std`` is Transform's per-bin std (preprocessing.normalisation_stats). Per dB of
    gain the "db" log-mel moves by 1 in every bin, "log10_1p" by at most 0.1 (exactly 0.1
    where log_scale * S >> 1, the loud cells that matter); an MFCC moves by that times the
    column sums of its DCT matrix, which is 0 except for c0 (DCT-II of a constant).
    """
    per_db = 1.0 if feature_config.log == "db" else 0.1
    if feature_config.kind == "summary":
        # A gain scales RMS and leaves chroma and the spectral shape alone: not an offset of every
        # statistic, so not modelled (0: no change); the ann preset turns the random gain off.
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
    """Shift each example of [batch, frames, bins] along the bins by k ~ U{-max_bins..max_bins}, the edge bin
    repeated into the gap: on mel bands, roughly a pitch shift (8 of 128 bands: about 1.5 semitones above
    1 kHz). Why: the from-scratch CNN learns the training artists' keys and timbres (docs/model-selection.md,
    "CNN")."""
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
    """Augment a training batch [batch, frames, bins] for ``tf.data.Dataset.map``.

    ``gain_per_db`` ([bins], from :func:`gain_scale`) enables the random gain; without it
    the gain is skipped (a warning says so) since a dB cannot be mapped to normalised
    units without Transform's statistics. Integer labels become one-hot (``num_classes`` =
    len(config.genres) wide) when mixup is on.
    """
    features = tf.convert_to_tensor(features, tf.float32)
    t = train_config
    seeds = batch_seeds(features, t.seed, 9)  # the band shift's seed is the ninth: the first eight are as before
    if t.random_gain_db > 0:
        if gain_per_db is None:
            log.warning("augment_batch: random_gain_db=%s ignored: pass gain_per_db=augment.gain_scale("
                        "config.features, preprocessing.normalisation_stats(tft_output, config).std).",
                        t.random_gain_db)
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
