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

from config.settings import GENRES, FeatureConfig, PipelineConfig
from conftest import shared_manifest
from models import audio, features
from models.efficientat import frontend as efficientat_frontend
from synthetic.generator import render_track
from tests.testkit.graph_ops import assert_core_ops_only

SR = 22050
# The contract is 0.5 dB; measured differences are ~1e-4 dB (float32 vs librosa's float64
# FFT), so a tenth of the contract still catches a convention slip (window, norm, padding).
TOLERANCE_DB = 0.05
MUSICNN = PipelineConfig().with_model("vgg")


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
    "cnn_preset": PipelineConfig().with_model("cnn").features,
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
    (FeatureConfig(kind="summary"), 66150, (1, 74)),
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


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(kind="mfcc"), MUSICNN.features,
                                    FeatureConfig(kind="summary")])
def test_graph_holds_core_ops_only(config):
    fn = tf.function(lambda w: features.compute(w, config, SR),
                     input_signature=[tf.TensorSpec([None, 48000], tf.float32)])
    ops = assert_core_ops_only(fn.get_concrete_function())
    assert "RFFT" in ops and ops & {"MatMul", "BatchMatMulV2", "BatchMatMulV3"}, ops


# ----- summary statistics (the ANN's input) ---------------------------------------------------
SUMMARY = FeatureConfig(kind="summary")
# Max |ours - librosa| / max(|librosa|, 1) per statistic. Measured (docs/features.md): 7.9e-7 on the
# synthetic clips, 6.4e-5 on real ones (roll-off: float32 running sums of ours and librosa's put a
# frame's 85 % point one FFT bin apart now and then). 1e-3 leaves room for that and still catches a
# convention slip: librosa's estimated tuning instead of 0 moves chroma statistics by up to 0.34.
SUMMARY_TOLERANCE = 1e-3


def librosa_summary(y: np.ndarray, sr: int, c: FeatureConfig = SUMMARY) -> np.ndarray:
    """librosa's functions of the same names, mean and variance over frames, in summary_names order."""
    kw = dict(n_fft=c.n_fft, hop_length=c.hop_length)
    per_frame = np.concatenate([
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=c.n_mfcc, n_mels=c.n_mels, **kw),
        librosa.feature.chroma_stft(y=y, sr=sr, tuning=0.0, **kw),
        librosa.feature.spectral_centroid(y=y, sr=sr, **kw),
        librosa.feature.spectral_bandwidth(y=y, sr=sr, **kw),
        librosa.feature.spectral_rolloff(y=y, sr=sr, **kw),
        librosa.feature.zero_crossing_rate(y, frame_length=c.n_fft, hop_length=c.hop_length),
        librosa.feature.rms(y=y, frame_length=c.n_fft, hop_length=c.hop_length),
    ])
    return np.concatenate([per_frame.mean(axis=1), per_frame.var(axis=1)])


def summary_errors(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(ours - ref) / np.maximum(np.abs(ref), 1.0)


def print_by_group(label: str, errors: np.ndarray, c: FeatureConfig) -> None:
    """Largest error per descriptor group (the table in docs/features.md; shown with pytest -s)."""
    stat_names = features.summary_names(c)
    groups = ["mfcc", "chroma", *features.SCALAR_DESCRIPTORS]
    cells = []
    for group in groups:
        for suffix in ("_mean", "_var"):
            cols = [k for k, n in enumerate(stat_names) if n.startswith(group) and n.endswith(suffix)]
            cells.append(f"{group}{suffix} {errors[:, cols].max():.1e}")
    print(f"{label}: " + ", ".join(cells))


def assert_summary_matches(y: np.ndarray, sr: int, names: list[str], c: FeatureConfig = SUMMARY) -> None:
    ours = features.compute(tf.constant(y), c, sr).numpy()
    assert ours.shape == (len(y), 1, len(features.summary_names(c)))
    errors = np.stack([summary_errors(ours[i, 0], librosa_summary(y[i], sr, c)) for i in range(len(y))])
    print_by_group(f"summary vs librosa, {len(y)} clips", errors, c)
    for i in range(len(y)):
        worst = int(np.argmax(errors[i]))
        assert errors[i, worst] < SUMMARY_TOLERANCE, (names[i], features.summary_names(c)[worst], errors[i, worst])


def test_librosa_estimated_tuning_would_exceed_the_tolerance():
    """The tolerance is tight enough to see chroma_stft's default (estimated) tuning instead of 0."""
    y = clips(SR)
    chroma = [k for k, n in enumerate(features.summary_names(SUMMARY)) if n.startswith("chroma")]
    moved = []
    for clip in y:
        fixed = librosa.feature.chroma_stft(y=clip, sr=SR, tuning=0.0)
        estimated = librosa.feature.chroma_stft(y=clip, sr=SR)
        diff = np.concatenate([estimated.mean(1) - fixed.mean(1), estimated.var(1) - fixed.var(1)])
        moved.append(np.abs(diff).max())
    print(f"chroma statistics moved by the estimated tuning: up to {max(moved):.2f} ({len(chroma)} statistics)")
    assert max(moved) > 10 * SUMMARY_TOLERANCE


@pytest.mark.parametrize("c", [SUMMARY, FeatureConfig(kind="summary", n_fft=1024, hop_length=256, n_mfcc=13)])
def test_summary_matches_librosa(c):
    assert_summary_matches(clips(SR), SR, ["blues", "classical", "metal"], c)


def test_summary_names_follow_the_output_order():
    names = features.summary_names(SUMMARY)
    assert len(names) == 2 * (20 + 12 + 5) == len(set(names))
    assert names[:2] == ["mfcc1_mean", "mfcc2_mean"] and names[20] == "chroma_C_mean"
    assert names[36] == "rms_mean" and names[37] == "mfcc1_var" and names[-1] == "rms_var"


def test_frame_descriptors_match_librosa_per_frame_on_silence_and_tiny_values():
    """The conventions of zero_crossing_rate (edge padding, |y| <= 1e-10 is 0, 0 is positive) and rms."""
    rng = np.random.default_rng(3)
    y = (0.5 * np.sin(np.arange(SR) * 0.05) + 0.05 * rng.standard_normal(SR)).astype(np.float32)
    y[4000:9000] = 0.0
    y[9000:12000] = rng.choice([-1e-11, 1e-11, -1e-9, 1e-9], 3000).astype(np.float32)
    y[:700] = -0.25  # a constant edge: the edge padding repeats it
    c = SUMMARY
    descriptors = features.frame_descriptors(tf.constant(y[np.newaxis]), c, SR).numpy()[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=c.n_fft, hop_length=c.hop_length)[0]
    rms = librosa.feature.rms(y=y, frame_length=c.n_fft, hop_length=c.hop_length)[0]
    np.testing.assert_allclose(descriptors[:, -2], zcr, atol=1e-7)
    np.testing.assert_allclose(descriptors[:, -1], rms, rtol=1e-5, atol=1e-8)


def test_chroma_filterbank_is_librosa():
    for sr, n_fft in ((22050, 2048), (16000, 512)):
        np.testing.assert_allclose(features.chroma_filterbank(sr, n_fft), librosa.filters.chroma(sr=sr, n_fft=n_fft),
                                   rtol=1e-5, atol=1e-9)


def test_summary_refuses_a_frame_crop():
    with pytest.raises(ValueError, match="summary"):
        features.output_shape(FeatureConfig(kind="summary", frames=100), 66150)


# ----- real GTZAN clips (../shared/data/gtzan) -------------------------------------------
def real_segments(root: Path, seconds: float = 3.0) -> list[tuple[str, np.ndarray]]:
    """Three seconds from 10 s into the first clip of each genre and encoding (FLAC and Ogg Vorbis, by the
    manifest): the features are compared on the samples each decodes to, so both encodings are exercised."""
    first: dict[tuple[str, str], str] = {}
    for row in shared_manifest():
        first.setdefault((row["genre"], row["encoding"]), row["path"])
    out = []
    for (_, _), relative in sorted(first.items()):
        y, sr = sf.read(root / relative, dtype="float32", frames=int(seconds * 22050), start=22050 * 10)
        assert sr == 22050
        out.append((Path(relative).name, y))
    return out


@pytest.mark.real_data
def test_real_clips_match_librosa(shared_gtzan):
    data = real_segments(shared_gtzan)
    assert {name.split(".")[0] for name, _ in data} == set(GENRES)
    assert {Path(name).suffix for name, _ in data} == {".flac", ".ogg"}
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


@pytest.mark.real_data
def test_real_clips_summary_matches_librosa(shared_gtzan):
    data = real_segments(shared_gtzan)
    assert_summary_matches(np.stack([d[1] for d in data]), SR, [d[0] for d in data])


def test_kaldi_log_mel_is_efficientats_front_end_in_the_projects_layout_and_core_ops():
    config = FeatureConfig(kind=features.KALDI_LOG_MEL)
    clip = render_track("jazz", 0, 3.0, 32000)
    got = features.compute(tf.constant(clip), config, 32000).numpy()
    assert got.shape == features.output_shape(config, clip.size) == (300, 128)
    np.testing.assert_array_equal(got, efficientat_frontend(tf.constant(clip[None])).numpy()[0].T)
    fn = tf.function(lambda w: features.compute(w, config, 32000), input_signature=[tf.TensorSpec([None, 96000])])
    assert_core_ops_only(fn.get_concrete_function())
    with pytest.raises(ValueError, match="32000 Hz, not 22050 Hz"):
        features.compute(tf.constant(clip), config, 22050)
    with pytest.raises(ValueError, match="frames must be None"):
        features.output_shape(FeatureConfig(kind=features.KALDI_LOG_MEL, frames=100), clip.size)


def test_model_inputs_are_the_kind_and_its_extra_kinds_each_at_its_own_rate_and_band():
    """compute_inputs: ``kind`` of the segment resampled to ``features.sample_rate``, each extra kind at the audio's
    rate, and with ``band_limit_hz`` neither hears above it: a 10-kHz tone leaves mn04's bands at their floor where a
    4-kHz tone does not."""
    config = FeatureConfig(n_fft=512, hop_length=256, n_mels=96, log="log10_1p", top_db=None, frames=187,
                           sample_rate=16000, extra_kinds=(features.KALDI_LOG_MEL,))
    t = np.arange(96000) / 32000
    tones = tf.constant(np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (4000.0, 10000.0)]).astype(np.float32))
    whole = features.compute_inputs(tones, config, 32000)
    assert features.model_inputs(config) == ("log_mel", features.KALDI_LOG_MEL)
    assert {k: tuple(v.shape[1:]) for k, v in whole.items()} == features.output_shapes(config, 96000, 32000)
    np.testing.assert_allclose(whole["log_mel"].numpy(), features.compute(
        audio.resample(tones, 32000, 16000), dataclasses.replace(config, sample_rate=None), 16000).numpy(), atol=1e-5)
    limited = features.compute_inputs(tones, dataclasses.replace(config, band_limit_hz=8000), 32000)
    floor = (np.log(1e-5) + 4.5) / 5  # mn04's scaling of an empty band
    high_tone = limited[features.KALDI_LOG_MEL].numpy()[1]
    assert np.abs(high_tone - floor).max() < 1e-3 < np.abs(whole[features.KALDI_LOG_MEL].numpy()[1] - floor).max()
    np.testing.assert_allclose(limited[features.KALDI_LOG_MEL].numpy()[0], whole[features.KALDI_LOG_MEL].numpy()[0],
                               atol=0.05)  # below the limit the band is kept
    with pytest.raises(ValueError, match="extra_kinds"):
        features.compute_inputs(tones, dataclasses.replace(config, extra_kinds=("mfcc",)), 32000)
    with pytest.raises(ValueError, match="band_limit_hz"):
        features.compute_inputs(tones, dataclasses.replace(config, band_limit_hz=0), 32000)
