"""Every serving case of docs/contracts.md, through real gRPC stubs, against the TF Serving test
double serving a small real model exported by ``models.signatures.export``.

Only TF Serving is replaced (serving/stand_in_server.py; its binary cannot run here). The model
is real: Transform's graph from tft_beam, an untrained Keras head, this module's signatures
(tests/testkit/serving.py ``export_small_model``: 8 kHz, 0.25-s segments, default limits).
"""
from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from synthetic.generator import render_track
from tests.testkit.serving import predict, serving_endpoint, small_model_base
from tests.testkit.tiny_transform import CONFIG

RATE = CONFIG.audio.sample_rate  # 8000
LIMIT = CONFIG.serving.max_clip_seconds  # 600 s, the default
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    with serving_endpoint(small_model_base(tmp_path_factory)) as target:
        channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 2**30)])
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
        channel.close()


def refused(stub, signature: str, **inputs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        predict(stub, signature, **inputs)
    return err.value.code(), err.value.details()


def noise(seconds: float, rate: int = RATE, level: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(level * rng.standard_normal(int(round(seconds * rate))), -1, 1).astype(np.float32)


def square(seconds: float, level: float, rate: int = RATE) -> np.ndarray:
    """A square wave: its peak and RMS both equal LEVEL, so the messages' figures are exact."""
    t = np.arange(int(round(seconds * rate)))
    return np.where((t // 20) % 2 == 0, level, -level).astype(np.float32)


def waveform(stub, clip: np.ndarray, rate: int = RATE, signature: str = "serving_default"):
    return predict(stub, signature, waveform=clip, sample_rate=np.int32(rate))


def wav_bytes(clip: np.ndarray, rate: int, subtype: str, container: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def example(audio: bytes) -> bytes:
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[audio]))
    return tf.train.Example(features=tf.train.Features(feature={"audio": feature})).SerializeToString()


# ----- serving_default: waveform + sample_rate -------------------------------------
REFUSALS = {
    "rate too low": (noise(1.0), 100, "The sample rate of 100 Hz is outside the supported range of 4000 to 192000 Hz."),
    "rate too high": (noise(1.0), 200000,
                      "The sample rate of 200000 Hz is outside the supported range of 4000 to 192000 Hz."),
    "empty": (np.zeros(0, np.float32), RATE, "The audio clip is empty (0 samples)."),
    "too short": (noise(0.1), RATE, "The audio clip is 0.10 s long, shorter than one 0.25 s segment."),
    "too long": (noise(LIMIT + 0.5, level=0.1), RATE,
                 "The audio clip is 600.5 s long, longer than the 600 s this model accepts "
                 "(serving.max_clip_seconds); send at most 600 s of it."),
    "NaN": (np.where(np.arange(RATE) == 7, np.nan, noise(1.0)).astype(np.float32), RATE,
            "The audio clip contains NaN or Inf samples; every sample must be finite."),
    "Inf": (np.where(np.arange(RATE) == 7, -np.inf, noise(1.0)).astype(np.float32), RATE,
            "The audio clip contains NaN or Inf samples; every sample must be finite."),
    "int16 scale sent as float": (square(1.0, 9830.0), RATE,
                                  "The audio clip peaks at 9830.0, above the accepted peak of 4; samples must be "
                                  "float32 in [-1, 1] (int16 PCM divided by 32768)."),
    "digital silence": (np.zeros(RATE, np.float32), RATE,
                        "The audio clip is silent: its RMS level of -inf dBFS is below the silence floor of "
                        "-60 dBFS (audio.silence_dbfs)."),
    "near silence": (square(1.0, 10 ** (-70 / 20)), RATE,
                     "The audio clip is silent: its RMS level of -70.0 dBFS is below the silence floor of "
                     "-60 dBFS (audio.silence_dbfs)."),
    "a DC offset alone": (np.full(RATE, 0.5, np.float32), RATE,
                          "The audio clip is silent: its RMS level of -inf dBFS is below the silence floor of "
                          "-60 dBFS (audio.silence_dbfs)."),
    # Checked by the test double (TF Serving checks dtypes and shapes against the signature too).
    "int16 dtype": ((noise(1.0) * 32767).astype(np.int16), RATE, "input 'waveform' must be float32, got int16"),
    "2-D": (np.zeros((2, RATE), np.float32), RATE, "input 'waveform' must have shape (None,), got [2, 8000]"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_serving_default_refuses_with_one_sentence(stub, case):
    clip, rate, message = REFUSALS[case]
    assert refused(stub, "serving_default", waveform=clip, sample_rate=np.int32(rate)) == (INVALID, message)


def test_serving_default_answers_good_clips_and_keeps_serving_after_refusals(stub):
    out = waveform(stub, noise(2.0))
    assert out["segment_scores"].shape == (8, 10) and out["genres"].tolist() == [g.encode() for g in CONFIG.genres]
    assert out["genre"] == out["genres"][np.argmax(out["scores"])]
    assert out["hop_seconds"] == np.float32(CONFIG.audio.hop_seconds)  # the timeline's step, as exported
    np.testing.assert_allclose(out["scores"].sum(), 1.0, atol=1e-5)
    at_limit = waveform(stub, noise(LIMIT, level=0.1))  # exactly the limit is accepted
    assert at_limit["segment_scores"].shape == (2400, 10)
    resampled = waveform(stub, noise(2.0, rate=44100), rate=44100)  # resampled in-graph
    assert resampled["segment_scores"].shape == (8, 10)


def test_peaks_up_to_2_are_clipped_like_training_data(stub):
    clip = noise(2.0, level=0.6)
    louder = np.clip(clip * 2.0, -2, 2)  # peaks up to 2: clipped to full scale, as int16 quantisation does
    np.testing.assert_allclose(waveform(stub, louder)["scores"], waveform(stub, np.clip(louder, -1, 1))["scores"],
                               atol=1e-6)


def test_the_answer_does_not_depend_on_the_level_the_clip_is_sent_at(stub):
    """The dB log-mel family of the CNN (this small model's features): each segment is brought to one level
    before the front end, so a gain from -24 to +6 dB (short of clipping) leaves every score as it was."""
    clip = np.clip(render_track("jazz", 0, seconds=2.0, sample_rate=RATE, seed=7), -1, 1) * 0.4
    original = waveform(stub, clip.astype(np.float32))
    for db in (-24.0, -12.0, -6.0, 6.0):
        sent = waveform(stub, (clip * 10 ** (db / 20)).astype(np.float32))
        # int16 quantisation of the quieter copies is the one difference left (the graph reads int16 PCM)
        np.testing.assert_allclose(sent["segment_scores"], original["segment_scores"], atol=1e-2)
        assert sent["genre"] == original["genre"]
    other = waveform(stub, noise(2.0))["segment_scores"]  # another clip does move the scores: the check can fail
    assert np.abs(other - original["segment_scores"]).max() > 0.1


# ----- serving_wav: a WAV file's bytes -----------------------------------------------
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_serving_wav_decodes_every_pcm_and_float_encoding_as_ingestion_does(stub, subtype):
    rate = 16000
    stereo = np.stack([noise(1.5, rate, seed=1), noise(1.5, rate, seed=2)], axis=1)
    data = wav_bytes(stereo, rate, subtype)
    decoded, decoded_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # ingestion's reader
    expected = waveform(stub, decoded.mean(axis=1, dtype=np.float32), decoded_rate)
    got = predict(stub, "serving_wav", wav_bytes=np.array(data, dtype=object))
    np.testing.assert_allclose(got["segment_scores"], expected["segment_scores"], atol=1e-5)
    assert got["genre"] == expected["genre"]


def test_serving_wav_reads_wave_format_extensible_and_a_truncated_data_chunk(stub):
    clip = noise(1.0)
    extensible = wav_bytes(np.stack([clip, clip, clip], axis=1), RATE, "PCM_24", container="WAVEX")
    assert extensible[20:22] == b"\xfe\xff"
    assert predict(stub, "serving_wav", wav_bytes=np.array(extensible, dtype=object))["segment_scores"].shape == (4, 10)
    truncated = wav_bytes(noise(1.0), RATE, "PCM_16")[:-RATE]  # the header promises 4000 more samples
    assert predict(stub, "serving_wav", wav_bytes=np.array(truncated, dtype=object))["segment_scores"].shape == (2, 10)


UNSUPPORTED = "is not supported; send 8, 16, 24 or 32 bit PCM or 32 or 64 bit float WAV, or decode the file and " \
              "send the waveform to serving_default."
WAV_REFUSALS = {
    "not a WAV file": (b"this is not audio", "The wav_bytes input is not a RIFF WAVE file."),
    "FLAC bytes": (None, "The wav_bytes input is not a RIFF WAVE file."),
    "header only": (b"RIFF\x04\x00\x00\x00WAVE", "The WAV file has no complete fmt chunk."),
    "no data chunk": (None, "The WAV file has no data chunk."),
    "MS ADPCM": (wav_bytes(noise(1.0), RATE, "MS_ADPCM"),
                 f"The WAV encoding (format code 2, 4 bits per sample) {UNSUPPORTED}"),
    "u-law": (wav_bytes(noise(1.0), RATE, "ULAW"),
              f"The WAV encoding (format code 7, 8 bits per sample) {UNSUPPORTED}"),
    "rate too low": (wav_bytes(noise(1.0, 2000), 2000, "PCM_16"),
                     "The sample rate of 2000 Hz is outside the supported range of 4000 to 192000 Hz."),
    "too long": (wav_bytes(noise(LIMIT + 1, 4000, level=0.1), 4000, "PCM_U8"),  # 2.4 MB
                 "The audio clip is 601.0 s long, longer than the 600 s this model accepts "
                 "(serving.max_clip_seconds); send at most 600 s of it."),
    "silent": (wav_bytes(np.zeros(RATE, np.float32), RATE, "FLOAT"),
               "The audio clip is silent: its RMS level of -inf dBFS is below the silence floor of "
               "-60 dBFS (audio.silence_dbfs)."),
    "too short": (wav_bytes(noise(0.1), RATE, "PCM_16"),
                  "The audio clip is 0.10 s long, shorter than one 0.25 s segment."),
}


def _wav_case(case: str) -> bytes:
    data = WAV_REFUSALS[case][0]
    if case == "FLAC bytes":
        buffer = io.BytesIO()
        sf.write(buffer, noise(1.0), RATE, format="FLAC")
        return buffer.getvalue()
    if case == "no data chunk":
        good = wav_bytes(noise(1.0), RATE, "PCM_16")
        return good[:36] + b"LIST" + good[40:]  # the data chunk renamed: no data
    return data


@pytest.mark.parametrize("case", list(WAV_REFUSALS))
def test_serving_wav_refuses_with_one_sentence(stub, case):
    assert refused(stub, "serving_wav", wav_bytes=np.array(_wav_case(case), dtype=object)) == \
        (INVALID, WAV_REFUSALS[case][1])


# ----- from_examples: serialized raw tf.Examples (TFMA, the clip evaluator) ----------------
def test_from_examples_empty_batch_gives_empty_probabilities(stub):
    out = predict(stub, "from_examples", examples=np.array([], dtype=object))
    assert out["probabilities"].shape == (0, 10)


def test_from_examples_classifies_segments_and_refuses_a_wrong_length(stub):
    pcm = (noise(0.5) * 32767).astype("<i2").tobytes()
    segments = [pcm[:4000], pcm[4000:]]  # two 0.25-s segments of int16
    assert predict(stub, "from_examples", examples=np.array([example(s) for s in segments], dtype=object))[
        "probabilities"].shape == (2, 10)
    batch = np.array([example(segments[0]), example(b"\0" * 10)], dtype=object)
    assert refused(stub, "from_examples", examples=batch) == (
        INVALID, "Every example must hold 4000 bytes of audio (2000 int16 samples, audio.segment_samples); "
                     "one holds 10 bytes.")
