"""Memory is bounded at the client's and the test double's doors, against the declared size.

Real gRPC stubs against the TF Serving test double (serving/stand_in_server.py, labelled as
such) serving the stand-in model. Peak memory on a 2-hour file and on the oversized declared
shape is measured by bench/memory_bounds.py (BENCHMARKS.md), not asserted here.
"""
from __future__ import annotations

import os
import threading

import grpc
import numpy as np
import pytest
import soundfile as sf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.audio_file import AudioFileError, AudioLevelError, AudioTooLongError, read_audio
from serving.client import GenreClient, predict_file
from tests.testkit.audio_files import tone, wav_bytes, with_header
from bench.memory_bounds import oversized_request
from tests.testkit.serving import stand_in_clip


def test_the_test_double_refuses_an_oversized_declared_shape_before_expanding_it(host, tmp_path):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(host))
    request = oversized_request()
    assert request.ByteSize() < 100
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(request, timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "declares shape [250000000] (1000000000 bytes), more than this server accepts" in refused.value.details()
    path = tmp_path / "ok.wav"
    sf.write(path, stand_in_clip("rock", 6.0), 22050)
    assert predict_file(path, host=host).genre == "rock"  # and it keeps serving


def test_the_client_refuses_a_long_file_from_its_header_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "two-hours.wav"
    path.write_bytes(with_header(wav_bytes(tone(0.5)), data_size=2 * 3600 * 22050 * 2))  # declares 2 h
    from audio import decode as audio_lib

    monkeypatch.setattr(audio_lib, "_read_float", lambda *a: pytest.fail("decoded past the header check"))
    with pytest.raises(AudioTooLongError, match="two-hours.wav is 120.0 min long, over the limit of 600 s"):
        read_audio(path, 600.0)
    with GenreClient("127.0.0.1:1", retries=0) as client:  # refused before any request
        with pytest.raises(AudioTooLongError):
            client.predict_file(path)


def test_the_client_refuses_a_fifo_without_opening_it(tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_error_of(read_audio, fifo)), daemon=True)
    worker.start()
    worker.join(timeout=120)  # opening a FIFO blocks forever; the reader must never open it
    assert outcome and isinstance(outcome[0], AudioFileError) and "FIFO" in str(outcome[0])


def test_the_client_applies_the_amplitude_and_silence_rules_before_sending(tmp_path):
    offset = tmp_path / "dc.wav"
    sf.write(offset, np.full(5 * 22050, 0.5, np.float32), 22050, subtype="FLOAT")
    hot = tmp_path / "hot.wav"
    sf.write(hot, tone(5.0) * 1075.0, 22050, subtype="FLOAT")
    with GenreClient("127.0.0.1:1", retries=0) as client:  # nothing is sent: no server needed
        for path, reason in ((offset, "silent"), (hot, "out_of_range")):
            with pytest.raises(AudioLevelError) as refused:
                client.predict_file(path)
            assert refused.value.reason == reason


def _error_of(fn, *args):
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001 - returned for the assertion
        return err
    return None
