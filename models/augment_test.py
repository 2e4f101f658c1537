"""models/augment.py: mask bounds, gain, band shift, mixup, determinism, core ops only."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from config.settings import GENRES, FeatureConfig, TrainConfig
from models import augment, features
from tests.testkit.graph_ops import assert_core_ops_only
from synthetic.generator import render_track

MASKS_ONLY = TrainConfig(spec_augment=True, freq_mask_param=5, time_mask_param=7, random_gain_db=0.0,
                         mixup_alpha=0.0)
BATCH, FRAMES, BINS = 16, 30, 20


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features that are never 0 (so every masked cell shows), and one-hot labels."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 2.0, (BATCH, FRAMES, BINS)).astype(np.float32)
    y = np.eye(len(GENRES), dtype=np.float32)[rng.integers(0, len(GENRES), BATCH)]
    return x, y


def contiguous(indices: np.ndarray) -> bool:
    return indices.size == 0 or indices[-1] - indices[0] + 1 == indices.size


def augmented_features(config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(batch before, batch after) ``augment_batch`` with ``config``, whose labels must come back unchanged."""
    x, y = batch()
    out, labels = augment.augment_batch(tf.constant(x), tf.constant(y), config)
    np.testing.assert_array_equal(labels.numpy(), y)
    return x, out.numpy()


def test_masks_change_features_only_within_bounds():
    x, out = augmented_features(MASKS_ONLY)
    widths = []
    for before, after in zip(x, out):
        changed = before != after
        assert np.all(after[changed] == 0.0), "masked cells hold 0, the normalised bin mean"
        masked_bins = np.flatnonzero(np.all(after == 0.0, axis=0))
        masked_frames = np.flatnonzero(np.all(after == 0.0, axis=1))
        # Every changed cell lies in one masked band of bins or one masked run of frames.
        in_band = np.zeros_like(changed)
        in_band[:, masked_bins] = True
        in_band[masked_frames, :] = True
        assert np.array_equal(changed, in_band)
        if masked_frames.size < FRAMES:  # a full-width time mask would hide the frequency band
            assert contiguous(masked_bins) and masked_bins.size <= MASKS_ONLY.freq_mask_param
        if masked_bins.size < BINS:
            assert contiguous(masked_frames) and masked_frames.size <= MASKS_ONLY.time_mask_param
        widths.append((masked_bins.size, masked_frames.size))
    assert any(f > 0 for f, _ in widths) and any(t > 0 for _, t in widths), "masks never applied"
    assert len(set(widths)) > 1, "every example got the same mask widths"


def run_pipeline(config: TrainConfig, gain: np.ndarray | None = None) -> list[np.ndarray]:
    """Two epochs through tf.data as the trainer runs it: reshuffled batches, parallel unordered map."""
    x, y = batch()
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(BATCH, seed=5, reshuffle_each_iteration=True).batch(4)
          .map(lambda f, l: augment.augment_batch(f, l, config, gain_per_db=gain), num_parallel_calls=4,
               deterministic=False))
    epochs = [sorted((f.numpy() for f, _ in ds), key=lambda a: a.tobytes()) for _ in range(2)]
    return epochs[0] + epochs[1]


def test_deterministic_with_a_seed():
    config = dataclasses.replace(MASKS_ONLY, random_gain_db=6.0, mixup_alpha=0.4)
    gain = np.full(BINS, 0.1, np.float32)
    first, again = run_pipeline(config, gain), run_pipeline(config, gain)
    other = run_pipeline(dataclasses.replace(config, seed=config.seed + 1), gain)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))
    # The same content gives the same draws; other content (next epoch's batches) new ones.
    x, y = batch()
    once = augment.augment_batch(tf.constant(x), tf.constant(y), MASKS_ONLY)[0].numpy()
    twice = augment.augment_batch(tf.constant(x), tf.constant(y), MASKS_ONLY)[0].numpy()
    np.testing.assert_array_equal(once, twice)
    x2 = x.copy()
    x2[0, 0, 0] += 1e-3
    moved = augment.augment_batch(tf.constant(x2), tf.constant(y), MASKS_ONLY)[0].numpy()
    assert not np.array_equal(once == 0, moved == 0)


def test_tfio_masks_build_core_ops():
    """tensorflow-io's pure-Python masks (what ours replicate) trace to core ops only."""
    import tensorflow_io as tfio

    fn = tf.function(lambda s: tfio.audio.time_mask(tfio.audio.freq_mask(s, 5), 7),
                     input_signature=[tf.TensorSpec([FRAMES, BINS], tf.float32)])
    assert "RandomUniformInt" in assert_core_ops_only(fn.get_concrete_function())


def test_random_gain_is_a_per_example_offset_of_gain_times_scale():
    config = TrainConfig(spec_augment=False, random_gain_db=6.0, mixup_alpha=0.0)
    x, y = batch()
    scale = np.linspace(0.05, 0.2, BINS).astype(np.float32)
    out, _ = augment.augment_batch(tf.constant(x), tf.constant(y), config, gain_per_db=scale)
    g = (out.numpy() - x) / scale  # the gain in dB, per cell
    np.testing.assert_allclose(g, np.broadcast_to(g[:, :1, :1], g.shape), atol=1e-3)
    assert np.all(np.abs(g) <= 6.0 + 1e-3) and np.std(g[:, 0, 0]) > 0.5


def test_gain_on_the_waveform_is_the_offset_gain_scale_predicts():
    """Louder audio moves the dB log-mel by the gain (and MFCC c0 only): the premise of gain_scale."""
    y = render_track("pop", 0, 1.0, 22050)
    for config in (FeatureConfig(), FeatureConfig(kind="mfcc")):
        quiet = features.compute(tf.constant(y[None]), config, 22050).numpy()[0]
        loud = features.compute(tf.constant(y[None] * 10 ** (4.0 / 20)), config, 22050).numpy()[0]
        predicted = 4.0 * augment.gain_scale(config, np.ones(quiet.shape[-1]))
        np.testing.assert_allclose(loud - quiet, np.broadcast_to(predicted, quiet.shape), atol=2e-3)
    std = np.linspace(5, 15, 128)
    np.testing.assert_allclose(augment.gain_scale(FeatureConfig(), std), 1 / std, rtol=1e-6)
    mfcc_scale = augment.gain_scale(FeatureConfig(kind="mfcc"), np.full(20, 2.0))
    assert mfcc_scale[0] == pytest.approx(np.sqrt(128) / 2) and np.all(mfcc_scale[1:] == 0)


def test_gain_on_the_waveform_moves_the_kaldi_log_mel_as_gain_scale_predicts():
    """efficientat's (ln(mel + 1e-5) + 4.5) / 5: ln(10) / 50 a dB wherever the mel energy is well above 1e-5."""
    config = FeatureConfig(kind=features.KALDI_LOG_MEL)
    y = render_track("pop", 0, 1.0, 32000)
    quiet = features.compute(tf.constant(y[None]), config, 32000).numpy()[0]
    loud = features.compute(tf.constant(y[None] * 10 ** (4.0 / 20)), config, 32000).numpy()[0]
    predicted = 4.0 * augment.gain_scale(config, np.ones(quiet.shape[-1]))
    assert predicted[0] == pytest.approx(4.0 * np.log(10) / 50)
    energetic = quiet > (np.log(1e-2) + 4.5) / 5  # mel energy above 1e-2: the offset is below 0.1 % of it
    assert energetic.mean() > 0.3
    np.testing.assert_allclose((loud - quiet)[energetic], np.broadcast_to(predicted, quiet.shape)[energetic], atol=2e-3)


def test_band_shift_moves_each_example_by_a_whole_number_of_bins_edges_repeated():
    config = TrainConfig(spec_augment=False, random_gain_db=0.0, mixup_alpha=0.0, band_shift=3)
    x, out = augmented_features(config)
    shifts = []
    for before, after in zip(x, out):
        # The one shift k in -3..3 with after[:, b] == before[:, clip(b - k)] for every bin b.
        matches = [k for k in range(-3, 4)
                   if np.array_equal(after, before[:, np.clip(np.arange(BINS) - k, 0, BINS - 1)])]
        assert len(matches) == 1, f"not a band shift of at most 3 bins: {matches}"
        shifts.append(matches[0])
    assert len(set(shifts)) > 2 and any(k != 0 for k in shifts), shifts


def test_band_shift_off_by_default_and_leaves_the_other_draws_alone():
    """band_shift 0 (the default) changes nothing; turning it on must not change the masks' random draws."""
    assert TrainConfig().band_shift == 0
    x, y = batch()
    masks = augment.augment_batch(tf.constant(x), tf.constant(y), MASKS_ONLY)[0].numpy()
    shifted = augment.augment_batch(tf.constant(x), tf.constant(y),
                                    dataclasses.replace(MASKS_ONLY, band_shift=2))[0].numpy()
    np.testing.assert_array_equal(masks == 0, shifted == 0)  # same mask bands, now over shifted content
    assert not np.array_equal(masks, shifted)


def test_mixup_blends_features_and_one_hot_labels_alike():
    config = TrainConfig(spec_augment=False, random_gain_db=0.0, mixup_alpha=0.4)
    classes = 4  # a label set of the user's own, not GTZAN's ten: the one-hot width follows it
    labels = np.arange(BATCH) % classes
    x = np.broadcast_to(labels[:, None, None], (BATCH, FRAMES, BINS)).astype(np.float32)  # example = its class
    out, mixed = augment.augment_batch(tf.constant(x), tf.constant(labels, tf.int64), config,
                                       num_classes=classes)
    out, mixed = out.numpy(), mixed.numpy()
    assert mixed.shape == (BATCH, classes) and mixed.dtype == np.float32
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(mixed >= 0) and np.all((mixed > 1e-6).sum(axis=1) <= 2)
    np.testing.assert_allclose(out[:, 0, 0], mixed @ np.arange(classes), atol=1e-4)
    assert np.any(np.abs(out - x) > 1e-3), "nothing was mixed"
    with pytest.raises(ValueError, match="num_classes"):
        augment.augment_batch(tf.constant(x), tf.constant(labels, tf.int64), config)


def test_augment_graph_holds_core_ops_only():
    config = dataclasses.replace(MASKS_ONLY, random_gain_db=3.0, mixup_alpha=0.2, band_shift=4)
    fn = tf.function(lambda f, l: augment.augment_batch(f, l, config, gain_per_db=np.ones(BINS, np.float32)),
                     input_signature=[tf.TensorSpec([None, FRAMES, BINS], tf.float32),
                                      tf.TensorSpec([None, len(GENRES)], tf.float32)])
    ops = assert_core_ops_only(fn.get_concrete_function())
    assert {"StatelessRandomUniformV2", "Fingerprint"} <= ops, ops
