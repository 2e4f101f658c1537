"""Parity of models/features.py with librosa, shapes, and the graph's op set."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import soundfile as sf
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

from models import features
from pipeline.config import GENRES, FeatureConfig, PipelineConfig
from synthetic.generator import render_track

SR = 22050
# The contract is 0.5 dB; measured differences are ~1e-4 dB (float32 vs librosa's float64
# FFT), so a tenth of the contract still catches a convention slip (window, norm, padding).
TOLERANCE_DB = 0.05
MUSICNN = PipelineConfig().with_model("vgg")


def assert_core_ops_only(concrete_fn) -> set[str]:
    """Every op of the graph (nested functions included) is a registered core op, none tfio's."""
    graph_def = concrete_fn.graph.as_graph_def()
    library = {f.signature.name for f in graph_def.library.function}
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    ops = {n.op for n in nodes if n.op not in library}
    assert not [op for op in ops if op.startswith("IO>")], f"tensorflow-io ops in the graph: {ops}"
    unregistered = sorted(op for op in ops if op_def_registry.get(op) is None)
    assert not unregistered, f"ops not registered in core TensorFlow: {unregistered}"
    return ops


def librosa_log_mel(y: np.ndarray, sr: int, c: FeatureConfig) -> np.ndarray:
    """The same parameters through librosa, [frames, n_mels] (musicnn's recipe for log10_1p)."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=c.window,
        center=c.center, pad_mode=c.pad_mode, power=c.power, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax,
        htk=c.mel_htk, norm=c.mel_norm)
    if c.log == "db":
        out = librosa.power_to_db(mel, ref=1.0, amin=c.amin, top_db=c.top_db)
    else:
        out = np.log10(1 + c.log_scale * mel)
    return out.T[: c.frames] if c.frames else out.T


def max_db_error(ours: np.ndarray, ref: np.ndarray, c: FeatureConfig) -> float:
    """Max |difference| in dB over the cells within 60 dB of the example's maximum."""
    to_db = 1.0 if c.log == "db" else 10.0  # log10 units of log10_1p -> dB, where log_scale * S >> 1
    ours, ref = ours * to_db, ref * to_db
    keep = ref >= ref.max() - 60.0
    return float(np.abs(ours - ref)[keep].max())


def clips(sample_rate: int, seconds: float = 3.0) -> np.ndarray:
    return np.stack([render_track(g, 0, seconds, sample_rate, seed=7) for g in ("blues", "classical", "metal")])


VARIANTS = {
    "librosa_defaults": FeatureConfig(),
    "htk_no_norm": FeatureConfig(mel_htk=True, mel_norm=None),
    "magnitude": FeatureConfig(power=1.0, top_db=None),
    "reflect_short_window_band": FeatureConfig(pad_mode="reflect", win_length=1024, hop_length=300, n_mels=64,
                                               fmin=50.0, fmax=8000.0, window="hamming"),
    "not_centred": FeatureConfig(center=False),
    "cropped": FeatureConfig(frames=100, top_db=60.0),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_log_mel_matches_librosa(name):
    c = VARIANTS[name]
    y = clips(SR)
    ours = features.log_mel(tf.constant(y), c, SR).numpy()
    for i in range(len(y)):
        ref = librosa_log_mel(y[i], SR, c)
        assert ours[i].shape == ref.shape
        assert max_db_error(ours[i], ref, c) < TOLERANCE_DB


def test_musicnn_preset_matches_its_librosa_recipe():
    c, sr = MUSICNN.features, MUSICNN.audio.sample_rate
    assert (c.n_fft, c.hop_length, c.n_mels, c.log, c.frames, sr) == (512, 256, 96, "log10_1p", 187, 16000)
    y = clips(sr)
    ours = features.compute(tf.constant(y), c, sr).numpy()
    assert ours.shape == (3, 187, 96)
    for i in range(len(y)):
        ref = np.log10(1 + 10000 * librosa.feature.melspectrogram(y=y[i], sr=sr, n_fft=512, hop_length=256,
                                                                   n_mels=96)).T[:187]
        assert max_db_error(ours[i], ref, c) < TOLERANCE_DB


def mfcc_correlations(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.array([np.corrcoef(ours[:, k], ref[:, k])[0, 1] for k in range(ref.shape[1])])


@pytest.mark.parametrize("c", [FeatureConfig(kind="mfcc"), FeatureConfig(kind="mfcc", n_mels=40, n_mfcc=13,
                                                                         dct_norm=None)])
def test_mfcc_matches_librosa(c):
    y = clips(SR)
    ours = features.compute(tf.constant(y), c, SR).numpy()
    for i in range(len(y)):
        ref = librosa.feature.mfcc(y=y[i], sr=SR, n_mfcc=c.n_mfcc, n_mels=c.n_mels, norm=c.dct_norm).T
        assert ours[i].shape == ref.shape
        assert mfcc_correlations(ours[i], ref).min() >= 0.999


def test_top_db_is_per_example():
    c = FeatureConfig(top_db=40.0)
    loud = render_track("rock", 1, 1.0, SR)
    y = np.stack([loud, loud * 1e-3])  # the quiet one would be all floor under a batch-wide max
    ours = features.log_mel(tf.constant(y), c, SR).numpy()
    for i in range(2):
        ref = librosa_log_mel(y[i], SR, c)
        assert max_db_error(ours[i], ref, c) < TOLERANCE_DB
        assert ours[i].max() - ours[i].min() == pytest.approx(40.0, abs=1e-3)
    assert ours[0].max() - ours[1].max() == pytest.approx(60.0, abs=0.01)


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_mel_filterbank_is_librosa(htk, norm):
    ours = features.mel_filterbank(16000, 512, 40, 30.0, 7000.0, htk, norm)
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=30.0, fmax=7000.0, htk=htk, norm=norm)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("norm", ["ortho", None])
def test_dct_matrix_is_scipy_dct_type2(norm):
    x = np.random.default_rng(0).standard_normal((5, 32))
    np.testing.assert_allclose(x @ features.dct_matrix(32, 12, norm),
                               scipy.fft.dct(x, type=2, norm=norm, axis=-1)[:, :12], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config,samples,shape", [
    (FeatureConfig(), 66150, (130, 128)),
    (FeatureConfig(kind="mfcc"), 66150, (130, 20)),
    (MUSICNN.features, 48000, (187, 96)),
    (FeatureConfig(center=False), 66150, (126, 128)),
])
def test_output_shape_is_the_static_shape_of_compute(config, samples, shape):
    assert features.output_shape(config, samples) == shape
    fn = tf.function(lambda w: features.compute(w, config, 16000),
                     input_signature=[tf.TensorSpec([None, samples], tf.float32)])
    concrete = fn.get_concrete_function()
    assert concrete.structured_outputs.shape.as_list() == [None, *shape]
    assert fn(np.zeros((2, samples), np.float32)).shape == (2, *shape)


def test_too_many_frames_requested_is_an_error():
    with pytest.raises(ValueError, match="frames"):
        features.output_shape(FeatureConfig(frames=200), 66150)
    with pytest.raises(ValueError, match="kind"):
        features.compute(tf.zeros([1, 4096]), FeatureConfig(kind="cqt"), SR)


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(kind="mfcc"), MUSICNN.features])
def test_graph_holds_core_ops_only(config):
    fn = tf.function(lambda w: features.compute(w, config, SR),
                     input_signature=[tf.TensorSpec([None, 48000], tf.float32)])
    ops = assert_core_ops_only(fn.get_concrete_function())
    assert "RFFT" in ops and ops & {"MatMul", "BatchMatMulV2", "BatchMatMulV3"}, ops


# ----- real GTZAN clips (../shared/data/gtzan) -------------------------------------------
def real_segments(root: Path, per_genre: int = 1, seconds: float = 3.0) -> list[tuple[str, np.ndarray]]:
    out = []
    for genre in GENRES:
        for path in sorted((root / "audio" / genre).glob("*.flac"))[:per_genre]:
            y, sr = sf.read(path, dtype="float32", frames=int(seconds * 22050), start=22050 * 10)
            assert sr == 22050
            out.append((path.name, y))
    return out


@pytest.mark.real_data
def test_real_clips_match_librosa(shared_gtzan):
    data = real_segments(shared_gtzan)
    assert len(data) == len(GENRES)
    y = np.stack([d[1] for d in data])
    c = FeatureConfig()
    ours_mel = features.log_mel(tf.constant(y), c, SR).numpy()
    ours_mfcc = features.compute(tf.constant(y), dataclasses.replace(c, kind="mfcc"), SR).numpy()
    for i, (name, clip) in enumerate(data):
        assert max_db_error(ours_mel[i], librosa_log_mel(clip, SR, c), c) < TOLERANCE_DB, name
        ref = librosa.feature.mfcc(y=clip, sr=SR, n_mfcc=20).T
        assert mfcc_correlations(ours_mfcc[i], ref).min() >= 0.999, name


@pytest.mark.real_data
def test_real_clips_match_musicnn_recipe(shared_gtzan):
    c = MUSICNN.features
    data = [(n, librosa.resample(y, orig_sr=22050, target_sr=16000)[:48000]) for n, y in real_segments(shared_gtzan)]
    ours = features.compute(tf.constant(np.stack([d[1] for d in data])), c, 16000).numpy()
    for i, (name, y) in enumerate(data):
        ref = np.log10(1 + 10000 * librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=256,
                                                                   n_mels=96)).T[:187]
        assert max_db_error(ours[i], ref, c) < TOLERANCE_DB, name
