"""Decoding and the per-file quality checks (no Beam, no TensorFlow)."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soxr

from audio import av_reader, levels
from audio import decode as audio_lib
from tests.testkit import library_files
from tests.testkit.audio_files import RATE, corrupt_wav_bytes, tone, truncated_wav_bytes, wav_bytes, with_header

SEGMENT = RATE  # 1 s


def load(data: bytes) -> audio_lib.DecodedAudio:
    return audio_lib.load(data, RATE, SEGMENT, silence_dbfs=-60.0)


def reason_of(data: bytes) -> str:
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(data)
    return caught.value.reason


def test_16_bit_mono_at_the_target_rate_is_read_losslessly():
    pcm = np.random.default_rng(1).integers(-32768, 32768, 2 * RATE).astype(np.int16)
    for fmt in ("WAV", "FLAC", "AU"):
        decoded = load(wav_bytes(pcm, fmt=fmt))
        assert decoded.lossless and decoded.samples.dtype == np.int16
        np.testing.assert_array_equal(decoded.samples, pcm)


@pytest.mark.parametrize("fmt,subtype", [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_lossy_formats_decode_to_float(fmt, subtype):
    decoded = load(wav_bytes(tone(2.0), fmt=fmt, subtype=subtype))
    assert decoded.samples.dtype == np.float32
    assert abs(len(decoded.samples) - 2 * RATE) < 0.05 * RATE  # codec padding/delay only
    assert -12 < levels.level_dbfs(decoded.samples) < -3  # a 0.5-amplitude sine is -9 dBFS


def test_wrong_sample_rate_is_resampled_not_quarantined():
    decoded = load(wav_bytes(tone(2.0, 44100, freq=1000), 44100))
    assert decoded.source_rate == 44100 and len(decoded.samples) == 2 * RATE
    # The tone survives at the same frequency: its spectral peak is at 1 kHz at 22050 Hz.
    spectrum = np.abs(np.fft.rfft(decoded.samples))
    assert abs(np.argmax(spectrum) * RATE / len(decoded.samples) - 1000) < 2


def test_stereo_is_downmixed_by_averaging_the_channels():
    rng = np.random.default_rng(2)
    left, right = (rng.integers(-20000, 20000, RATE + 10).astype(np.int16) for _ in range(2))
    decoded = load(wav_bytes(np.stack([left, right], axis=1)))
    assert decoded.source_channels == 2
    expected = (left.astype(np.float64) + right) / 2 / 32768
    np.testing.assert_array_equal(decoded.samples, expected.astype(np.float32))


def test_a_corrupt_file_like_gtzan_jazz_00054_is_undecodable():
    assert reason_of(corrupt_wav_bytes()) == audio_lib.UNDECODABLE


def test_a_truncated_flac_is_undecodable():
    whole = wav_bytes(tone(3.0, amplitude=0.3) + 0.05 * np.random.default_rng(3).standard_normal(3 * RATE)
                      .astype(np.float32), fmt="FLAC")
    assert reason_of(whole[:len(whole) // 2]) == audio_lib.UNDECODABLE


def test_a_truncated_wav_keeps_what_is_there_and_is_flagged():
    assert reason_of(truncated_wav_bytes(claimed_seconds=4.0, kept_seconds=0.3)) == audio_lib.TOO_SHORT
    decoded = load(truncated_wav_bytes(claimed_seconds=4.0, kept_seconds=1.5))
    assert len(decoded.samples) == int(1.5 * RATE) and decoded.truncated


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("AU", "PCM_16"),
                                         ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_whole_files_are_not_flagged_truncated(fmt, subtype):
    assert not load(wav_bytes(tone(2.0), fmt=fmt, subtype=subtype)).truncated


# ----- header plausibility and the memory bound ----------------------------------------------

def test_a_header_declaring_1_hz_is_refused_before_any_sample_is_read():
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(with_header(wav_bytes(tone(0.1)), rate=1))  # 2205 samples would be 2205 s at 1 Hz
    assert caught.value.reason == audio_lib.BAD_SAMPLE_RATE and "1 Hz" in caught.value.detail
    assert reason_of(with_header(wav_bytes(tone(2.0)), rate=audio_lib.MAX_RATE + 1)) == audio_lib.BAD_SAMPLE_RATE
    assert load(with_header(wav_bytes(tone(2.0)), rate=audio_lib.MIN_RATE)).source_rate == audio_lib.MIN_RATE


def test_a_header_declaring_more_than_the_cap_is_too_long():
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.load(with_header(wav_bytes(tone(2.0)), data_size=0xFFFFFFF0), RATE, SEGMENT, -60.0, max_seconds=1200)
    assert caught.value.reason == audio_lib.TOO_LONG and "declares 97391.5 s" in caught.value.detail


@pytest.mark.parametrize("rate,subtype", [(RATE, "PCM_16"), (44100, "PCM_16"), (RATE, "FLOAT")])
def test_decoded_audio_over_the_cap_is_too_long(rate, subtype):
    """Lossless path, resampled path, float path: none returns more than max_seconds."""
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.load(wav_bytes(tone(3.0, rate), rate, subtype=subtype), RATE, SEGMENT, -60.0, max_seconds=2.5)
    assert caught.value.reason == audio_lib.TOO_LONG
    assert len(audio_lib.load(wav_bytes(tone(3.0, rate), rate, subtype=subtype), RATE, SEGMENT, -60.0,
                          max_seconds=3.0).samples) == 3 * RATE


def test_absurd_channel_counts_are_refused():
    many = np.tile(tone(0.01)[:, None], (1, audio_lib.MAX_CHANNELS + 1))  # 220 frames, 65 channels
    assert reason_of(wav_bytes(many)) == audio_lib.IMPLAUSIBLE_HEADER


def test_block_wise_resampling_equals_resampling_the_whole_file():
    stereo = np.stack([tone(4.0, 44100, freq=440), tone(4.0, 44100, amplitude=0.2, freq=3000)], axis=1)
    assert len(stereo) > 2 * audio_lib.BLOCK_FRAMES  # several blocks
    decoded = load(wav_bytes(stereo, 44100, subtype="FLOAT"))
    whole = soxr.resample(stereo.mean(axis=1, dtype=np.float32), 44100, RATE, quality="HQ")
    np.testing.assert_array_equal(decoded.samples, whole)


def test_a_file_object_decodes_like_its_bytes(tmp_path):
    data = wav_bytes(tone(2.0, 44100), 44100)
    (tmp_path / "a.wav").write_bytes(data)
    with open(tmp_path / "a.wav", "rb") as f:
        np.testing.assert_array_equal(load(f).samples, load(data).samples)
    assert load(io.BytesIO(data)).source_rate == 44100


def test_empty_file_and_header_without_samples_are_empty():
    assert reason_of(b"") == audio_lib.EMPTY
    assert reason_of(wav_bytes(np.zeros(0, np.float32))) == audio_lib.EMPTY


def test_a_text_file_named_wav_is_not_audio():
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(b"hello, I am a text file\n" * 10)
    assert caught.value.reason == audio_lib.NOT_AUDIO and "hello" in caught.value.detail


def test_shorter_than_one_segment_is_too_short():
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(wav_bytes(tone(0.5)))
    assert caught.value.reason == audio_lib.TOO_SHORT and "0.500 s" in caught.value.detail


def test_silence_and_near_silence_are_quarantined_quiet_music_is_not():
    assert reason_of(wav_bytes(np.zeros(2 * RATE, np.float32))) == audio_lib.SILENT
    hiss = 10 ** (-70 / 20) * np.random.default_rng(4).standard_normal(2 * RATE).astype(np.float32)
    assert reason_of(wav_bytes(hiss, subtype="FLOAT")) == audio_lib.SILENT
    quiet = load(wav_bytes(tone(2.0, amplitude=10 ** (-40 / 20))))  # -43 dBFS: quiet, not silent
    assert math.isclose(levels.level_dbfs(quiet.samples), -43.0, abs_tol=0.1)


def test_non_finite_float_samples_are_quarantined():
    samples = tone(2.0)
    samples[100] = np.nan
    assert reason_of(wav_bytes(samples, subtype="FLOAT")) == audio_lib.NON_FINITE


# ----- FFmpeg's containers and codecs (PyAV) ----------------------------------------------------

SOURCE = 44100
# Every container the library holds that FFmpeg reads here, and AIFF, which libsndfile reads.
FFMPEG_FORMATS = ("aac", "alac", "opus", "wma", "webm", "mka", "oga", "mp4", "adts", "aifc", "caf", "wv")


def encoded(tmp_path, samples: np.ndarray, fmt: str, rate: int = SOURCE) -> bytes:
    return library_files.encode(tmp_path / fmt, samples, rate, fmt).read_bytes()


@pytest.mark.parametrize("fmt", FFMPEG_FORMATS + ("aiff", "aif"))
def test_every_library_format_decodes(tmp_path, fmt):
    data = encoded(tmp_path, tone(2.0, SOURCE), fmt)
    assert audio_lib.reader_for(data[:64]) == (audio_lib.LIBSNDFILE if fmt in ("aiff", "aif") else audio_lib.FFMPEG)
    decoded = load(data)
    assert abs(len(decoded.samples) - 2 * RATE) < 0.05 * RATE  # codec padding/delay only
    assert -9.5 < levels.level_dbfs(decoded.samples) < -8.5  # a 0.5-amplitude sine is -9 dBFS
    assert not decoded.truncated and not decoded.spans


def test_every_extension_read_is_a_format_the_decoder_recognises(tmp_path):
    from config.settings import AUDIO_EXTENSIONS
    made = {**library_files.FORMATS, **library_files.MORE_FORMATS}
    made_extensions = {spec[0] for spec in made.values()} | {"au", "ogg"}  # libsndfile's own, tested above
    assert set(AUDIO_EXTENSIONS) <= made_extensions, set(AUDIO_EXTENSIONS) - made_extensions


def test_container_signatures_are_recognised():
    assert audio_lib.looks_like_audio(b"\0\0\0\x20ftypM4A \0\0\0\0")
    assert audio_lib.looks_like_audio(b"FORM\0\0\0\0AIFF") and audio_lib.looks_like_audio(b"FORM\0\0\0\0AIFC")
    assert not audio_lib.looks_like_audio(b"FORM\0\0\0\0ILBMBMHD")  # an IFF picture
    assert audio_lib.looks_like_audio(bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"))  # ASF (WMA)
    assert audio_lib.looks_like_audio(bytes.fromhex("1a45dfa3") + b"\0" * 12)  # EBML (WebM, Matroska)
    assert audio_lib.reader_for(b"\xff\xf1\x50\x40") == audio_lib.FFMPEG  # ADTS AAC
    assert audio_lib.reader_for(b"\xff\xfb\x90\x64") == audio_lib.LIBSNDFILE  # MP3
    vorbis_page = b"OggS" + bytes(22) + b"\x01\x1e" + b"\x01vorbis"
    opus_page = b"OggS" + bytes(22) + b"\x01\x13" + b"OpusHead"
    assert audio_lib.reader_for(vorbis_page) == audio_lib.LIBSNDFILE
    assert audio_lib.reader_for(opus_page) == audio_lib.FFMPEG


@pytest.mark.parametrize("fmt", ["alac", "aifc", "mka", "oga"])
def test_ffmpeg_lossless_stereo_is_downmixed_by_averaging_the_channels(tmp_path, fmt):
    rng = np.random.default_rng(2)
    stereo = np.round(rng.uniform(-0.6, 0.6, (2 * SOURCE, 2)) * 32767) / 32767
    decoded = audio_lib.decode(encoded(tmp_path, stereo.astype(np.float32), fmt), None)
    assert decoded.source_channels == 2 and decoded.source_rate == SOURCE
    quantised = np.round(stereo * 32767) / 32768  # the 16-bit samples the encoder stored (float for AIFF-C)
    expected = stereo.mean(axis=1) if fmt == "aifc" else quantised.mean(axis=1)
    np.testing.assert_allclose(decoded.samples, expected, atol=1e-6)


@pytest.mark.parametrize("fmt", ["aac", "opus", "wma"])
def test_ffmpeg_lossy_stereo_is_downmixed(tmp_path, fmt):
    stereo = np.stack([tone(2.0, SOURCE), np.zeros(2 * SOURCE, np.float32)], axis=1)
    decoded = load(encoded(tmp_path, stereo, fmt))
    assert decoded.source_channels == 2
    assert -15.5 < levels.level_dbfs(decoded.samples) < -14.5  # half of a -9 dBFS sine: -15 dBFS


@pytest.mark.parametrize("fmt", ["aac", "opus"])
def test_ffmpeg_audio_is_resampled_to_the_target_rate(tmp_path, fmt):
    decoded = load(encoded(tmp_path, tone(2.0, SOURCE, freq=1000), fmt))
    assert decoded.source_rate == (48000 if fmt == "opus" else SOURCE)
    spectrum = np.abs(np.fft.rfft(decoded.samples))
    assert abs(np.argmax(spectrum) * RATE / len(decoded.samples) - 1000) < 2


def test_ffmpeg_resampling_is_the_streamed_soxr_of_the_decoded_source(tmp_path):
    data = encoded(tmp_path, np.stack([tone(4.0, SOURCE), tone(4.0, SOURCE, freq=3000)], axis=1), "alac")
    source = audio_lib.decode(data, None).samples
    np.testing.assert_allclose(load(data).samples, soxr.resample(source, SOURCE, RATE, quality="HQ"), atol=1e-6)


@pytest.mark.parametrize("fmt", ["aac", "opus"])
def test_ffmpeg_header_over_the_cap_is_too_long_before_decoding(tmp_path, fmt, monkeypatch):
    data = encoded(tmp_path, tone(3.0, SOURCE), fmt)
    monkeypatch.setattr(audio_lib, "_read_float", lambda *a: pytest.fail("decoded past the header check"))
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.decode(data, RATE, max_seconds=2.0)
    assert caught.value.reason == audio_lib.TOO_LONG and abs(caught.value.declared_seconds - 3.0) < 0.01


@pytest.mark.parametrize("fmt", ["aac", "opus", "webm"])
def test_ffmpeg_decoding_stops_past_the_cap_when_the_container_states_no_length(tmp_path, fmt, monkeypatch):
    """A container without a stated length (MediaRecorder's WebM): the cap holds on the decoded samples."""
    data = encoded(tmp_path, tone(3.0, SOURCE), fmt)
    monkeypatch.setattr(av_reader.AvSound, "_declared_frames", lambda self: (0, False))
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.decode(data, RATE, max_seconds=1.0)
    assert caught.value.reason == audio_lib.TOO_LONG and caught.value.declared_seconds is None
    assert len(audio_lib.decode(data, RATE, max_seconds=3.5).samples) > 2.9 * RATE


@pytest.mark.parametrize("rate, channels, reason", [
    (1, None, audio_lib.BAD_SAMPLE_RATE), (1_000_000, None, audio_lib.BAD_SAMPLE_RATE),
    (None, 100, audio_lib.IMPLAUSIBLE_HEADER)])
def test_an_m4a_header_out_of_range_is_refused_before_decoding(tmp_path, rate, channels, reason, monkeypatch):
    data = library_files.with_alac_header(encoded(tmp_path, tone(2.0, SOURCE), "alac"), rate, channels)
    monkeypatch.setattr(audio_lib, "_read_float", lambda *a: pytest.fail("decoded past the header check"))
    assert reason_of(data) == reason


def test_a_broken_opus_header_is_undecodable(tmp_path):
    data = bytearray(encoded(tmp_path, tone(2.0, SOURCE), "opus"))
    at = data.find(b"OpusHead")
    data[at + 9] = 255  # channel count: the page's checksum no longer holds
    assert reason_of(bytes(data)) == audio_lib.UNDECODABLE


def test_a_cut_m4a_is_undecodable_or_truncated(tmp_path):
    """Written for playback, its index (moov) follows the audio: a cut copy has none. Written for streaming,
    the index comes first: a cut copy keeps the audio before the cut and is flagged."""
    samples = tone(4.0, SOURCE, amplitude=0.3) + 0.05 * np.random.default_rng(3).standard_normal(4 * SOURCE)
    whole = encoded(tmp_path, samples.astype(np.float32), "aac")
    assert reason_of(whole[:len(whole) // 2]) == audio_lib.UNDECODABLE
    streamable = library_files.encode_streamable(tmp_path / "s", samples.astype(np.float32), SOURCE, "aac")
    data = streamable.read_bytes()
    assert not load(data).truncated
    cut = load(data[:len(data) * 3 // 5])
    assert cut.truncated and 1.5 * RATE < len(cut.samples) < 3 * RATE


def test_a_cut_opus_keeps_what_is_there_and_is_flagged(tmp_path):
    samples = tone(4.0, SOURCE, amplitude=0.3) + 0.05 * np.random.default_rng(3).standard_normal(4 * SOURCE)
    data = encoded(tmp_path, samples.astype(np.float32), "opus")
    assert not load(data).truncated
    cut = load(data[:len(data) * 3 // 4])
    assert cut.truncated and 1.5 * RATE < len(cut.samples) < 3.5 * RATE
    assert reason_of(data[:200]) in (audio_lib.EMPTY, audio_lib.UNDECODABLE)  # the headers, no audio


@pytest.mark.parametrize("name", ["x.m4a", "x.opus"])
def test_text_named_like_an_ffmpeg_format_is_not_audio(name):
    assert reason_of(f"{name}: hello, I am a text file\n".encode() * 10) == audio_lib.NOT_AUDIO


def test_an_mp4_without_audio_is_undecodable(tmp_path):
    import av
    path = tmp_path / "video.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(audio_lib.BadAudio) as caught:
        load(path.read_bytes())
    assert caught.value.reason == audio_lib.UNDECODABLE and "no audio stream" in caught.value.detail


def test_an_ffmpeg_file_object_decodes_like_its_bytes(tmp_path):
    path = library_files.encode(tmp_path / "a", tone(2.0, SOURCE), SOURCE, "aac")
    with open(path, "rb") as f:
        np.testing.assert_array_equal(load(f).samples, load(path.read_bytes()).samples)


def test_16_bit_mono_at_the_target_rate_stays_lossless_through_ffmpeg(tmp_path):
    pcm = np.random.default_rng(1).integers(-32768, 32768, 2 * RATE).astype(np.int16)
    for fmt in ("mka", "oga"):
        decoded = load(encoded(tmp_path, pcm / 32767.0, fmt, RATE))
        assert decoded.lossless
        np.testing.assert_array_equal(decoded.samples, np.clip(np.round(pcm / 32767.0 * 32767), -32768, 32767))


# ----- windowed decoding through FFmpeg --------------------------------------------------------

def _kept(num_samples: int) -> list[tuple[int, int]]:
    """Eight 1-s spans spread over the track, as ingestion keeps segments."""
    return [(start, start + RATE) for start in np.linspace(0, num_samples - RATE, 8).astype(int)]


@pytest.mark.parametrize("fmt, windowed", [("alac", True), ("aac", False), ("opus", False), ("mka", False)])
def test_ffmpeg_windows_equal_whole_file_decoding_where_the_container_seeks_exactly(tmp_path, fmt, windowed):
    rng = np.random.default_rng(5)
    stereo = (0.3 * rng.standard_normal((60 * SOURCE, 2))).astype(np.float32)
    data = encoded(tmp_path, stereo, fmt)
    whole = audio_lib.decode(data, RATE).samples
    part = audio_lib.decode(data, RATE, wanted=_kept)
    assert bool(part.spans) == windowed and not part.truncated
    if windowed:
        assert part.length == len(whole) and len(part.samples) == 8 * RATE
        for start, end in part.spans:
            at = part.position(start)
            np.testing.assert_allclose(part.samples[at:at + end - start], whole[start:end], atol=1e-5)
    else:
        np.testing.assert_array_equal(part.samples, whole)


# ----- parity: FFmpeg against libsndfile on the real clips -------------------------------------

# Measured on 6 clips per format (max abs difference of float samples at 16 kHz, after the same soxr
# resampling): FLAC and WAV 0 (the same samples), Ogg Vorbis below 6e-7, MP3 below 3e-6 (two decoders).
PARITY_BOUNDS = {"flac": 0.0, "wav": 0.0, "vorbis": 2e-6, "mp3": 1e-5}


def _float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768 if samples.dtype == np.int16 else samples


@pytest.mark.parametrize("encoding", sorted(PARITY_BOUNDS))
def test_ffmpeg_decodes_the_real_clips_as_libsndfile_does(shared_gtzan, encoding):
    import csv
    import soundfile as sf
    manifest = list(csv.DictReader((shared_gtzan / "manifest.csv").open()))
    wanted = "vorbis" if encoding == "vorbis" else "flac"
    clips = [shared_gtzan / row["path"] for row in manifest if row["encoding"] == wanted][:3]
    worst = 0.0
    for path in clips:
        data = path.read_bytes()
        if encoding in ("wav", "mp3"):
            pcm, rate = sf.read(io.BytesIO(data), dtype="int16")
            out = io.BytesIO()
            sf.write(out, pcm, rate, format=encoding.upper())
            data = out.getvalue()
        for target in (22050, 16000):
            ours = _float(audio_lib.decode(data, target, reader=audio_lib.LIBSNDFILE).samples)
            theirs = _float(audio_lib.decode(data, target, reader=audio_lib.FFMPEG).samples)
            assert len(ours) == len(theirs)
            worst = max(worst, float(np.abs(ours - theirs).max()))
    print(f"{encoding}: FFmpeg vs libsndfile, {len(clips)} real clips, 22050 and 16000 Hz: max abs {worst:.3g}")
    assert worst <= PARITY_BOUNDS[encoding]
