"""The default export of musicnn and the LSTM (musicnn.ServingBody) answers as the training graph's layers do.

Both graphs of one model are exported with ``signatures.export`` (``graph="serving"``, the default, and
``graph="keras"``) on a real Transform output (tft_beam, musicnn's 16-kHz features) and the pretrained
MSD_musicnn body with random heads; every signature's outputs must agree within 1e-4 on synthetic clips,
and ``serving_default``'s on real GTZAN clips (one .flac and one .ogg per genre) where ../shared exists.
The default export is also served through the TF Serving test double (tests/testkit/serving.py) over gRPC.
"""
from __future__ import annotations

import csv
import io
import os

import grpc
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tensorflow_serving.apis import prediction_service_pb2_grpc

from config.settings import GENRES, PipelineConfig
from models import audio, lstm, musicnn, preprocessing, signatures, transfer
from serving.client import GenreClient
from synthetic.generator import render_track
from tests.testkit.serving import predict, serving_endpoint
from tests.testkit.tiny_transform import analyze_and_transform

CONFIG = PipelineConfig().with_model("musicnn")
ATOL = 1e-4
FAMILIES = ("musicnn", "lstm")


def _raw_rows(config: PipelineConfig) -> list[dict]:
    """Two 3-s segments of three synthetic genres, cut as ExampleGen cuts them."""
    a, rows = config.audio, []
    for label, genre in enumerate(GENRES[:3]):
        clip = render_track(genre, 0, seconds=2 * a.segment_seconds, sample_rate=a.sample_rate, seed=1)
        pcm = audio.encode_pcm16_segments(tf.constant(clip), a.segment_samples, a.hop_samples, a.last_segment)
        rows += [{"audio": [p], "label": [label], "track_id": [f"{genre}.00000".encode()]} for p in pcm.numpy()]
    return rows


def _with_heads(model: keras.Model, body_output: str, heads: int) -> keras.Model:
    """MODEL's body with HEADS random heads averaged, as the presets export musicnn (transfer.average_heads)."""
    body, head = transfer.split_at(model, body_output)
    copies = [keras.models.clone_model(head) for _ in range(heads)]
    for copy in copies:
        copy.set_weights([w * 0.2 for w in head.get_weights()])  # small logits: scores far from 0 and 1
        head = keras.models.clone_model(head)
    return transfer.average_heads(model, body, copies)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, dict[str, str]]:
    """family -> graph -> export dir (TF Serving layout: ``.../<family>-<graph>/1``); "transform" -> its dir."""
    work = tmp_path_factory.mktemp("serving-graph")
    _, transform_dir = analyze_and_transform(CONFIG, _raw_rows(CONFIG), str(work), [1])
    tft_output = tft.TFTransformOutput(transform_dir)
    stats = preprocessing.normalisation_stats(tft_output, CONFIG)
    shape, classes = (musicnn.FRAMES, musicnn.MELS), len(CONFIG.genres)
    keras.utils.set_random_seed(0)
    models = {"musicnn": _with_heads(musicnn.build_musicnn(shape, classes, CONFIG.train, input_stats=(stats.mean, stats.std)),
                                     musicnn.EMBEDDING, 3),
              "lstm": lstm.build_lstm(shape, classes, CONFIG.train, input_stats=(stats.mean, stats.std))}
    out = {"transform": transform_dir}
    for family, model in models.items():
        out[family] = {}
        for graph in signatures.GRAPHS:
            path = str(work / f"{family}-{graph}" / "1")
            signatures.export(model, tft_output, CONFIG, path, graph=graph)
            out[family][graph] = path
    return out


def _signatures(path: str):
    return tf.saved_model.load(path).signatures


def _clip(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tones = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(80, 4000, 5))
    return np.clip(tones + 0.05 * rng.standard_normal(t.size), -1, 1).astype(np.float32)


def _wav(clip: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _assert_same_answers(old: dict, new: dict) -> None:
    for key in ("scores", "segment_scores"):
        np.testing.assert_allclose(new[key].numpy(), old[key].numpy(), atol=ATOL, rtol=0)
    assert new["genre"].numpy() == old["genre"].numpy()


def test_unknown_graph_is_refused():
    with pytest.raises(ValueError, match="must be one of"):
        signatures.inference(keras.Sequential([keras.layers.Dense(1)]), "fast")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_serving_graph_uses_the_serving_body_and_keeps_every_signature(exports, family):
    new, old = (tf.saved_model.load(exports[family][g]) for g in signatures.GRAPHS)
    assert set(new.signatures) == set(old.signatures) == {
        signatures.DEFAULT_SIGNATURE, signatures.WAV_SIGNATURE, signatures.EXAMPLES_SIGNATURE,
        signatures.FEATURES_SIGNATURE}
    assert hasattr(new, "serving_body")

    def ops(loaded) -> set[str]:
        return {node.op for f in loaded.signatures.values() for fn in f.graph.as_graph_def().library.function
                for node in fn.node_def}

    # The front end's max over the bands is a reduction on the convolutions' output, not a pooling layer.
    assert "MaxPool" in ops(old) and "MaxPool" not in ops(new)
    keras.models.load_model(exports[family]["serving"], compile=False)  # Keras (TFMA) still loads it


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("rate,seconds,seed", [(22050, 30.0, 0), (44100, 9.5, 1), (16000, 3.0, 2)])
def test_serving_default_and_serving_wav_answer_as_the_training_graph(exports, family, rate, seconds, seed):
    new, old = (_signatures(exports[family][g]) for g in signatures.GRAPHS)
    clip = _clip(seconds, rate, seed)
    inputs = {"waveform": tf.constant(clip), "sample_rate": tf.constant(rate, tf.int32)}
    answers = old[signatures.DEFAULT_SIGNATURE](**inputs)
    assert 0.02 < answers["scores"].numpy().max() < 0.98  # not saturated: the tolerance means something
    _assert_same_answers(answers, new[signatures.DEFAULT_SIGNATURE](**inputs))
    wav = {"wav_bytes": tf.constant(_wav(clip, rate))}
    _assert_same_answers(old[signatures.WAV_SIGNATURE](**wav), new[signatures.WAV_SIGNATURE](**wav))
    np.testing.assert_array_equal(new[signatures.FEATURES_SIGNATURE](**inputs)["features"].numpy(),
                                  old[signatures.FEATURES_SIGNATURE](**inputs)["features"].numpy())


@pytest.mark.parametrize("family", FAMILIES)
def test_from_examples_answers_as_the_training_graph(exports, family):
    new, old = (_signatures(exports[family][g]) for g in signatures.GRAPHS)
    examples = []
    for row in _raw_rows(CONFIG):
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=row["audio"]))
        examples.append(tf.train.Example(features=tf.train.Features(feature={"audio": feature})).SerializeToString())
    got, want = (s[signatures.EXAMPLES_SIGNATURE](examples=tf.constant(examples))["probabilities"].numpy()
                 for s in (new, old))
    assert got.shape == (len(examples), len(CONFIG.genres))
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_the_serving_graph_serves_over_grpc_through_the_test_double(exports):
    base = os.path.dirname(exports["musicnn"]["serving"])
    clip = _clip(30.0, 22050, 3)
    want = _signatures(exports["musicnn"]["keras"])[signatures.DEFAULT_SIGNATURE](
        waveform=tf.constant(clip), sample_rate=tf.constant(22050, tf.int32))
    with serving_endpoint(base) as target, GenreClient(target, "genre", timeout=120.0) as client:
        answer = client.predict_waveform(clip, 22050)
        assert answer.genre == want["genre"].numpy().decode()
        np.testing.assert_allclose(answer.scores, want["scores"].numpy(), atol=ATOL, rtol=0)
        channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 2**30)])
        try:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            wav = predict(stub, signatures.WAV_SIGNATURE, wav_bytes=np.array(_wav(clip, 22050), dtype=object))
        finally:
            channel.close()
        np.testing.assert_allclose(wav["scores"], want["scores"].numpy(), atol=ATOL, rtol=0)


def _real_clips(root) -> list[tuple[str, str]]:
    """(path, encoding): for every genre its first .flac and its first .ogg clip of the manifest."""
    picked: dict[tuple[str, str], str] = {}
    with open(root / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            picked.setdefault((row["genre"], row["encoding"]), str(root / row["path"]))
    return [(path, encoding) for (_, encoding), path in sorted(picked.items())]


@pytest.mark.real_data
@pytest.mark.parametrize("family", FAMILIES)
def test_real_clips_get_the_training_graphs_answers(exports, family, shared_gtzan):
    new, old = (_signatures(exports[family][g])[signatures.DEFAULT_SIGNATURE] for g in signatures.GRAPHS)
    clips = _real_clips(shared_gtzan)
    assert {g for g in CONFIG.genres} <= {os.path.basename(os.path.dirname(p)) for p, _ in clips}
    assert {e for _, e in clips} == {"flac", "vorbis"}
    for path, _ in clips:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        inputs = {"waveform": tf.constant(samples.mean(axis=1)), "sample_rate": tf.constant(rate, tf.int32)}
        _assert_same_answers(old(**inputs), new(**inputs))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_answer_does_not_depend_on_the_level_of_the_recording(exports, family):
    """Gains from -24 to +6 dB give the original's scores: the graph normalises each segment's level
    (features.level_dbfs) before the front end. The clip peaks below 0.5, so +6 dB does not clip."""
    serve = _signatures(exports[family]["serving"])[signatures.DEFAULT_SIGNATURE]
    clip = _clip(9.0, 22050, 3)
    clip *= 0.45 / np.abs(clip).max()

    def answer(db: float) -> dict:
        sent = (clip * 10 ** (db / 20)).astype(np.float32)
        return serve(waveform=tf.constant(sent), sample_rate=tf.constant(22050, tf.int32))

    original = answer(0.0)
    assert 0.02 < original["scores"].numpy().max() < 0.98
    for db in (-24.0, -12.0, -6.0, 6.0):
        louder = answer(db)
        # int16 quantisation at -24 dB is the only difference left (the feature graph reads int16 PCM).
        np.testing.assert_allclose(louder["segment_scores"].numpy(), original["segment_scores"].numpy(), atol=2e-3)
        assert louder["genre"].numpy() == original["genre"].numpy()
