"""Test helpers: a stand-in genre SavedModel, and the TF Serving test double on a model dir.

For an end-to-end test on the pipeline's pushed model, one line is enough::

    from tests.testkit.serving import serve_model  # noqa: F401  (pytest fixture)

    def test_pushed_model_serves(serve_model, pushed_dir, wav_path):
        assert predict_file(wav_path, host=serve_model(pushed_dir)).genre in config.genres

``serve_model(base)`` starts serving/stand_in_server.py on a free loopback port over BASE
(TF Serving layout, ``<base>/<version>/saved_model.pb``) and returns ``"127.0.0.1:PORT"``;
the servers stop when the test ends. Outside pytest use :func:`serving_endpoint`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, Sequence

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_serving.apis import predict_pb2

from config.settings import PipelineConfig
from serving.stand_in_server import start_server
from serving.tensors import to_ndarray, to_tensor_proto

STAND_IN_SEGMENT_SECONDS = 3.0
DEFAULT_GENRES: tuple[str, ...] = PipelineConfig().genres  # the stand-in's label set unless given


@contextlib.contextmanager
def serving_endpoint(model_base: str | os.PathLike, model_name: str = "genre", **options) -> Iterator[str]:
    """Serve MODEL_BASE with the test double while the block runs; yields ``host:port``.

    OPTIONS go to ``start_server`` (``max_message_bytes``, ``ssl_config_text``, ...).
    """
    server, port = start_server(os.fspath(model_base), model_name, port=0, **options)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def predict(stub, signature: str, **inputs) -> dict[str, np.ndarray]:
    """One Predict call on the served ``genre`` model: named inputs (numpy) in, named outputs (numpy) back."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "genre", signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(to_tensor_proto(value))
    response = stub.Predict(request, timeout=120)
    return {name: to_ndarray(proto) for name, proto in response.outputs.items()}


@pytest.fixture
def serve_model() -> Iterator[Callable[..., str]]:
    """A function ``serve(model_base, model_name="genre") -> "127.0.0.1:PORT"``; stops servers at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda model_base, model_name="genre": stack.enter_context(serving_endpoint(model_base, model_name))


# ----- a stand-in for the pipeline's pushed model ------------------------------
class _StandIn(tf.Module):
    """Honours the inputs and outputs of the serving contract (docs/contracts.md) with scores
    from segment loudness, for fast client tests.

    Segment RMS r selects genre round(N r) of the N ``genres`` (shifted by GENRE_SHIFT, so
    versions differ); empty, short and non-finite input raise InvalidArgumentError through
    tf.debugging. The real signatures' other refusals (length cap, silence, peak, WAV
    encodings) are tested on :func:`export_small_model`.
    """

    def __init__(self, genre_shift: int, genres: Sequence[str] = DEFAULT_GENRES,
                 hop_seconds: float = STAND_IN_SEGMENT_SECONDS):
        super().__init__()
        self.genre_shift = genre_shift
        self.genres = tuple(genres)
        self.hop_seconds = hop_seconds

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")])
    def serve(self, waveform, sample_rate):
        tf.debugging.assert_positive(sample_rate, message="sample_rate must be positive")
        num_samples = tf.size(waveform)
        tf.debugging.assert_greater(num_samples, 0, message="waveform is empty")
        segment = tf.cast(tf.round(STAND_IN_SEGMENT_SECONDS * tf.cast(sample_rate, tf.float32)), tf.int32)
        tf.debugging.assert_greater_equal(
            num_samples, segment, message=f"waveform is shorter than one {STAND_IN_SEGMENT_SECONDS:g}-s segment")
        tf.debugging.assert_all_finite(waveform, message="waveform contains NaN or Inf")
        hop = tf.cast(tf.round(self.hop_seconds * tf.cast(sample_rate, tf.float32)), tf.int32)
        segments = tf.signal.frame(waveform, segment, hop)  # whole segments only
        rms = tf.sqrt(tf.reduce_mean(tf.square(segments), axis=1))
        n = len(self.genres)
        logits = -4.0 * tf.abs(float(n) * rms[:, None] - tf.range(n, dtype=tf.float32)[None, :])
        segment_scores = tf.nn.softmax(tf.roll(logits, shift=self.genre_shift, axis=1))
        scores = tf.reduce_mean(segment_scores, axis=0)
        genres = tf.constant(list(self.genres))
        return {"scores": scores, "genre": tf.gather(genres, tf.argmax(scores)),
                "segment_scores": segment_scores, "genres": genres,
                "hop_seconds": tf.constant(self.hop_seconds, tf.float32)}


def build_stand_in_model(model_base: str | os.PathLike, version: int = 1, genre_shift: int = 0,
                         genres: Sequence[str] = DEFAULT_GENRES, hop_seconds: float = STAND_IN_SEGMENT_SECONDS) -> str:
    """Save the stand-in (label set ``genres``, segments ``hop_seconds`` apart) as ``<model_base>/<version>/``
    (TF Serving layout); return that dir."""
    export_dir = os.path.join(os.fspath(model_base), str(version))
    module = _StandIn(genre_shift, genres, hop_seconds)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    return export_dir


STAND_IN_TUNE = (50, 40, 33, 40, 25, 66, 44, 30)  # half-periods in samples, a quarter second each


def stand_in_clip(genre: str, seconds: float = 30.0, sample_rate: int = 22050,
                  genres: Sequence[str] = DEFAULT_GENRES) -> np.ndarray:
    """A float32 square-wave tune the stand-in (genre_shift=0, same ``genres``) classifies as GENRE.

    A square wave's RMS is its amplitude whatever its pitch, so every segment has the level that names
    GENRE; the pitch changes every quarter second (as a tune does), so the page does not take the clip
    for steady noise (app/audibility.py).
    """
    level = (tuple(genres).index(genre) + 0.2) / len(genres)
    t = np.arange(int(seconds * sample_rate))
    half_periods = np.array(STAND_IN_TUNE)[(t // (sample_rate // 4)) % len(STAND_IN_TUNE)]
    phase = np.cumsum(1.0 / half_periods)  # half-cycles so far: the sign flips at each whole one
    return np.where(np.floor(phase) % 2 == 0, level, -level).astype(np.float32)


# ----- a small real model, exported through models.signatures ------------------
def export_small_model(model_base: str | os.PathLike, version: int = 1, work_dir: str | os.PathLike | None = None,
                       config=None) -> str:
    """Export a tiny real model with ``models.signatures.export`` as ``<model_base>/<version>/``.

    Real Transform (tft_beam on the DirectRunner, in memory) on a few synthetic segments at
    8 kHz with 0.25-s segments, and an untrained Flatten-Dense Keras model: the serving graph
    (validation, WAV decoding, resampling, segmenting, the saved transform graph) is the
    pipeline's own, only smaller. Measured 30-60 s on the shared 2-core machine (Beam and
    Transform's start-up, mostly), hence :func:`small_model_base` shares one export.
    """
    import tf_keras as keras

    from models import features, signatures
    from tests.testkit.tiny_transform import CONFIG, analyze_and_transform, raw_examples
    import tensorflow_transform as tft

    config = config or CONFIG
    export_dir = os.path.join(os.fspath(model_base), str(version))
    work = os.fspath(work_dir or os.path.join(os.fspath(model_base), f".work-{version}"))
    _, transform_dir = analyze_and_transform(config, raw_examples(config, [1]), work, [1])
    frames, bins = features.output_shape(config.features, config.audio.segment_samples)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((frames, bins), name=config.features.kind)
    outputs = keras.layers.Dense(len(config.genres), activation="softmax")(keras.layers.Flatten()(inputs))
    signatures.export(keras.Model(inputs, outputs), tft.TFTransformOutput(transform_dir), config, export_dir)
    return export_dir


def small_model_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``<session tmp>/small-model/genre``, holding version 1 of :func:`export_small_model`.

    Exported once per test session (a later call finds the complete version on disk), so
    every module that serves the real signatures shares one export.
    """
    from serving.layout import is_complete_version

    base = tmp_path_factory.getbasetemp() / "small-model" / "genre"
    if not is_complete_version(str(base / "1")):
        export_small_model(base, version=1, work_dir=tmp_path_factory.mktemp("small-model-work"))
    return str(base)


# ----- TLS material made at run time ------------------------------------------------
@contextlib.contextmanager
def tls_serving_endpoint(model_base: str | os.PathLike, tls_dir: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """The test double serving TLS (client certificates required) with certificates made in
    TLS_DIR by :func:`make_tls_files`; yields ``(host:port, files)``."""
    files = make_tls_files(tls_dir)
    with open(files["ssl_config"], encoding="ascii") as f:
        ssl_config_text = f.read()
    with serving_endpoint(model_base, ssl_config_text=ssl_config_text) as target:
        yield target, files


def make_tls_files(directory: str | os.PathLike, host: str = "127.0.0.1") -> dict[str, str]:
    """A throw-away CA, a server certificate for HOST (IP or DNS name) and a client certificate.

    Returns the PEM file paths (``ca_cert``, ``server_cert``, ``server_key``, ``client_cert``,
    ``client_key``) and ``ssl_config``: TF Serving's ``--ssl_config_file`` text requiring
    client certificates signed by the CA. Keys are 2048-bit RSA, valid for one day.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)

    def certificate(name, key, issuer_name, issuer_key, ca, san=None):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(name, data: bytes) -> str:
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_pem(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key, server_key, client_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "genre test CA")])
    ca = certificate("genre test CA", ca_key, ca_name, ca_key, ca=True)
    try:
        san = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    server = certificate(host, server_key, ca_name, ca_key, ca=False, san=san)
    client = certificate("genre client", client_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = {"ca_cert": write("ca.pem", ca.public_bytes(pem)),
             "server_cert": write("server.pem", server.public_bytes(pem)),
             "server_key": write("server.key", key_pem(server_key)),
             "client_cert": write("client.pem", client.public_bytes(pem)),
             "client_key": write("client.key", key_pem(client_key))}
    text = "\n".join(f'{field}: "{_pem_text(paths[source])}"' for field, source in
                     (("server_key", "server_key"), ("server_cert", "server_cert"), ("custom_ca", "ca_cert")))
    paths["ssl_config"] = write("ssl.config", (text + "\nclient_verify: true\n").encode())
    return paths


def _pem_text(path: str) -> str:
    """A PEM file as a text-proto string literal body (newlines escaped)."""
    with open(path, encoding="ascii") as f:
        return f.read().replace("\n", "\\n")
