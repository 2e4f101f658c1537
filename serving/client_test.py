"""The client against the TF Serving test double, over real gRPC on loopback.

Nothing is mocked except TF Serving itself, which cannot run here (no binary, no Docker):
serving/stand_in_server.py stands in for it, with TF Serving's own gRPC services and messages.
The model is a stand-in SavedModel honouring the serving contract (tests/testkit/serving.py).
"""
from __future__ import annotations

import socket
import time

import grpc
import numpy as np
import pytest
import soundfile as sf

from config.settings import GENRES
from serving.audio_file import AudioFileError, read_audio
from serving.client import (
    GenreClient,
    ModelInputError,
    ServerUnavailableError,
    ServingClientError,
    ServingRpcError,
    TlsConfig,
    model_status,
    predict_file,
    predict_waveform,
    readable_error,
)
from tests.testkit.serving import serve_model  # noqa: F401  (pytest fixture)
from tests.testkit.serving import build_stand_in_model, make_tls_files, serving_endpoint, stand_in_clip, tls_serving_endpoint

RATE = 22050


def test_predict_file_returns_the_expected_genre_and_sorted_scores(host, tmp_path):
    clip = stand_in_clip("jazz", seconds=30, sample_rate=RATE)
    path = tmp_path / "song.wav"
    sf.write(path, np.stack([clip, clip], axis=1), RATE, subtype="PCM_16")  # stereo: downmixed by the client
    result = predict_file(path, host=host)
    assert result.genre == "jazz"
    assert result.model_version == 1
    assert result.segment_scores.shape == (10, len(GENRES))  # 30 s = ten 3-s segments
    assert result.hop_seconds == 3.0  # the segments' step, read from the model's answer
    ranked = result.ranked()
    assert ranked[0][0] == "jazz"
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    assert sorted(result.genres) == sorted(GENRES)
    assert sum(result.to_dict()["scores"].values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("fmt,subtype,ext", [
    ("WAV", "PCM_16", "wav"), ("AU", "PCM_16", "au"), ("FLAC", "PCM_16", "flac"),
    ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_every_supported_format_decodes_to_mono_at_its_native_rate(host, tmp_path, fmt, subtype, ext):
    rate = 16000
    clip = stand_in_clip("country", seconds=6, sample_rate=rate)  # level 0.22
    path = tmp_path / f"clip.{ext}"
    sf.write(path, np.stack([2 * clip, np.zeros_like(clip)], axis=1), rate, format=fmt, subtype=subtype)
    waveform, sample_rate = read_audio(path)
    assert sample_rate == rate and waveform.ndim == 1 and waveform.dtype == np.float32
    # The mono mix averages the channels: level 0.22 ("country"), where the left channel alone
    # would be 0.44 ("hiphop").
    assert np.sqrt(np.mean(waveform[rate:-rate] ** 2)) == pytest.approx(0.22, rel=0.05)
    assert predict_file(path, host=host).genre == "country"


def test_audio_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioFileError, match="not found: .*nope.wav"):
        read_audio(missing)
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"this is not audio" * 10)
    with pytest.raises(AudioFileError, match="cannot decode audio file .*garbage.flac"):
        read_audio(garbage)


BAD_INPUTS = {
    "empty": (np.zeros(0, np.float32), "waveform is empty"),
    "too short": (np.full(RATE, 0.3, np.float32), "shorter than one 3-s segment"),
    "NaN": (np.where(np.arange(RATE * 4) == 100, np.nan, 0.3).astype(np.float32), "NaN or Inf"),
    "int16": ((stand_in_clip("rock", 4, RATE) * 32767).astype(np.int16), "'waveform' must be float32, got int16"),
    "2-D": (np.zeros((2, RATE * 4), np.float32), "'waveform' must have shape"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_invalid_argument_and_the_server_keeps_serving(host, case):
    waveform, message = BAD_INPUTS[case]
    with pytest.raises(ModelInputError, match="INVALID_ARGUMENT") as err:
        predict_waveform(waveform, RATE, host=host, retries=0)
    assert message in str(err.value)
    assert "Graph execution error" not in str(err.value)  # the op's message, as TF Serving sends it
    assert predict_waveform(stand_in_clip("blues", 6, RATE), RATE, host=host).genre == "blues"


def test_unknown_model_and_signature_errors(host):
    with pytest.raises(ServingRpcError) as err:
        predict_waveform(stand_in_clip("pop", 6, RATE), RATE, host=host, model="other")
    assert err.value.code == grpc.StatusCode.NOT_FOUND and "other" in str(err.value)
    with pytest.raises(ServingRpcError) as err:
        model_status(host=host, model="other")
    assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_versions_newest_complete_wins_explicit_version_and_missing_version(tmp_path):
    base = tmp_path / "genre"
    build_stand_in_model(base, version=1)
    clip = stand_in_clip("disco", 6, RATE)  # the stand-in's version 2 shifts every genre by one
    with serving_endpoint(base) as target, GenreClient(target, retries=0) as client:
        first = client.predict_waveform(clip, RATE)
        assert (first.model_version, first.genre) == (1, "disco")

        build_stand_in_model(base, version=2, genre_shift=1)  # pushed while the server runs
        newest = client.predict_waveform(clip, RATE)
        assert (newest.model_version, newest.genre) == (2, "hiphop")
        pinned = client.predict_waveform(clip, RATE, version=1)
        assert (pinned.model_version, pinned.genre) == (1, "disco")
        with pytest.raises(ServingRpcError, match="version 7|7\\)") as err:
            client.predict_waveform(clip, RATE, version=7)
        assert err.value.code == grpc.StatusCode.NOT_FOUND

        statuses = client.model_status()
        assert [(s.version, s.state) for s in statuses] == [(1, "AVAILABLE"), (2, "AVAILABLE")]
        assert [(s.version, s.state) for s in client.model_status(version=2)] == [(2, "AVAILABLE")]

        # A push still being written (version 3: a graph, no variables yet) is skipped, as TF
        # Serving skips a folder it cannot load: version 2 keeps answering, 3 is not found.
        (base / "3").mkdir()
        (base / "3" / "saved_model.pb").write_bytes((base / "2" / "saved_model.pb").read_bytes())
        assert client.predict_waveform(clip, RATE).model_version == 2
        with pytest.raises(ServingRpcError, match=r"Specific\(genre, 3\); versions on disk: \[1, 2\]") as err:
            client.predict_waveform(clip, RATE, version=3)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        assert [s.version for s in client.model_status()] == [1, 2]

        # A complete but broken push (version 4) is INTERNAL with the load error; pinned versions still serve.
        (base / "4" / "variables").mkdir(parents=True)
        (base / "4" / "saved_model.pb").write_bytes(b"not a SavedModel")
        (base / "4" / "variables" / "variables.index").write_bytes(b"")
        with pytest.raises(ServingRpcError, match="loading genre version 4 failed") as err:
            client.predict_waveform(clip, RATE)
        assert err.value.code == grpc.StatusCode.INTERNAL
        assert client.predict_waveform(clip, RATE, version=2).genre == "hiphop"
        assert [s.state for s in client.model_status()] == ["AVAILABLE", "AVAILABLE", "END"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_clearly_after_retries():
    target = f"127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError) as err:
        predict_waveform(stand_in_clip("pop", 6, RATE), RATE, host=target, timeout=2.0, retries=2)
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert target in message and "UNAVAILABLE after 3 attempt(s)" in message
    assert "docker compose -f serving/docker-compose.yml up -d" in message
    # Each attempt fails fast (nothing listens), so no upper bound on time is asserted: on a loaded
    # machine any bound could fail. The attempt count above is what the retry logic guarantees.
    assert elapsed >= 0.2  # at least the first backoff was waited


def test_silent_server_hits_the_deadline_on_every_attempt():
    with socket.socket() as silent:  # accepts TCP connections, never speaks HTTP/2
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ServerUnavailableError, match="did not answer within 0.5 s .*2 attempt"):
            model_status(host=target, timeout=0.5, retries=1)
        elapsed = time.monotonic() - start
    assert elapsed >= 2 * 0.5  # both deadlines ran out; a lower bound cannot fail because of load


def test_serve_model_fixture_serves_a_pushed_dir(serve_model, tmp_path):
    """The lead's e2e one-liner: serve_model(<pushed serving_dir>) -> host."""
    build_stand_in_model(tmp_path / "genre", version=1700000000)  # Pusher-style timestamp version
    host = serve_model(tmp_path / "genre")
    result = predict_waveform(stand_in_clip("rock", 6, RATE), RATE, host=host)
    assert (result.genre, result.model_version) == ("rock", 1700000000)


# ----- TLS (TF Serving's --ssl_config_file) ---------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A TLS test double requiring client certificates, with a CA made for this test; yields (target, files)."""
    base = tmp_path_factory.mktemp("tls-models") / "genre"
    build_stand_in_model(base, version=1)
    with tls_serving_endpoint(base, tmp_path_factory.mktemp("tls")) as endpoint:
        yield endpoint


def test_tls_round_trip_with_client_certificate(tls):
    target, files = tls
    config = TlsConfig(ca_cert=files["ca_cert"], client_cert=files["client_cert"], client_key=files["client_key"])
    with GenreClient(target, tls=config, retries=0) as client:
        assert client.predict_waveform(stand_in_clip("metal", 6, RATE), RATE).genre == "metal"
        assert [(s.version, s.state) for s in client.model_status()] == [(1, "AVAILABLE")]


@pytest.mark.parametrize("who", ["plaintext client", "no client certificate", "another CA"])
def test_tls_server_refuses_clients_it_cannot_trust(tls, tmp_path, who):
    target, files = tls
    if who == "plaintext client":
        config = None
    elif who == "no client certificate":
        config = TlsConfig(ca_cert=files["ca_cert"])
    else:  # the server's certificate is not signed by the CA the client trusts
        config = TlsConfig(ca_cert=make_tls_files(tmp_path)["ca_cert"], client_cert=files["client_cert"],
                           client_key=files["client_key"])
    with pytest.raises(ServerUnavailableError, match=f"cannot reach the model server at {target}"):
        model_status(host=target, timeout=5, retries=0, tls=config)


def test_tls_config_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="needs both a client certificate and its key"):
        TlsConfig(client_cert="client.pem")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(ServingClientError, match=f"the TLS CA certificate {not_pem} is not a PEM file"):
        GenreClient("127.0.0.1:1", tls=TlsConfig(ca_cert=str(not_pem)))
    with pytest.raises(ServingClientError, match="cannot read the TLS CA certificate .*missing.pem"):
        GenreClient("127.0.0.1:1", tls=TlsConfig(ca_cert=str(tmp_path / "missing.pem")))


def test_readable_error_reduces_tf_servings_assertion_text():
    sent = ("assertion failed: [The audio clip is empty (0 samples).]\n\t [[{{function_node "
            "__inference_serve_waveform_1191}}{{node Assert_1/Assert}}]]\n\t [[StatefulPartitionedCall]]")
    assert readable_error(sent) == "The audio clip is empty (0 samples)."
    assert readable_error("assertion failed: [a] [b]") == "a b"
    plain = "input 'waveform' must be float32, got int16"
    assert readable_error(plain) == plain
