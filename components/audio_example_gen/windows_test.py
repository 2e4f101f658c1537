"""Windowed decoding: a long track's kept segments decoded alone equal whole-file decoding at the same places."""
from __future__ import annotations

import dataclasses
import io
from typing import Optional

import numpy as np
import pytest
import soundfile as sf

from audio import decode as audio_lib
from components.audio_example_gen import ingest, segments
from components.audio_example_gen.ingest import FileTask
from tests.testkit.audio_files import RATE, TEST_AUDIO, tone

SOURCE_RATE = 44100
MINUTES = 2
# 3-s segments, 8 kept of a 2-minute track's 40: the kept windows are a fifth of it.
CFG = dataclasses.replace(TEST_AUDIO, segment_seconds=3.0, hop_seconds=3.0, max_segments_per_track=8)
TOLERANCE = 1e-5  # float32 samples; measured differences are below 1e-6 (float rounding of soxr's blocks)


def music(seconds: float, rate: int = SOURCE_RATE, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Tones and noise, different in every channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    columns = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(n) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def encoded(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    """Written in blocks: libsndfile's Vorbis encoder crashes on one write of minutes of audio."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, samples.shape[1], format=fmt, subtype=subtype) as f:
        for i in range(0, len(samples), 1 << 15):
            f.write(samples[i:i + (1 << 15)])
    return buf.getvalue()


def wanted_by(cfg):
    return lambda n: segments.spans(n, ingest.kept_segments(n, cfg)[2], cfg.segment_samples)


def assert_windows_match(windowed: audio_lib.DecodedAudio, whole: audio_lib.DecodedAudio, tolerance: float) -> None:
    assert windowed.spans and windowed.length == len(whole.samples)
    for start, end in windowed.spans:
        at = windowed.position(start)
        got, expected = windowed.samples[at:at + end - start], whole.samples[start:end]
        if tolerance:
            np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
        else:
            np.testing.assert_array_equal(got, expected)


class CountingReader(io.BytesIO):
    """A file object that counts the bytes read from it."""

    bytes_read = 0

    def read(self, size: Optional[int] = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer) -> int:  # what soundfile's virtual I/O calls
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


@pytest.fixture(scope="module")
def long_files() -> dict[str, bytes]:
    stereo = music(MINUTES * 60)
    return {fmt: encoded(stereo, SOURCE_RATE, fmt, subtype)
            for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("AIFF", "PCM_16"))}


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "AIFF"])
@pytest.mark.parametrize("last_segment", ["drop", "pad"])
def test_windows_equal_whole_decoding_at_the_kept_segments(long_files, fmt, last_segment):
    cfg = dataclasses.replace(CFG, last_segment=last_segment, segment_seconds=2.9, hop_seconds=2.9)
    whole = audio_lib.decode(long_files[fmt], RATE)
    windowed = audio_lib.decode(long_files[fmt], RATE, wanted=wanted_by(cfg))
    assert_windows_match(windowed, whole, TOLERANCE)
    in_track, indices, starts = ingest.kept_segments(windowed.length, cfg)
    assert len(windowed.spans) == len(indices) == cfg.max_segments_per_track < in_track
    assert (in_track, indices) == ingest.kept_segments(len(whole.samples), cfg)[:2]  # the same segments, spread
    assert windowed.spans[-1][1] == windowed.length if last_segment == "pad" else True
    # Cut into int16 segments, a window is within one step of whole decoding.
    for start in starts:
        mine = next(segments.pieces(windowed.samples, [windowed.position(start)], cfg.segment_samples))
        theirs = next(segments.pieces(whole.samples, [start], cfg.segment_samples))
        assert np.max(np.abs(mine.astype(int) - theirs)) <= 1


def test_only_the_windows_are_read(long_files, monkeypatch):
    frames_read = []
    real_read = sf.SoundFile.read

    def counting_read(self, *args, **kwargs):
        out = real_read(self, *args, **kwargs)
        frames_read.append(len(out))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    total = MINUTES * 60 * SOURCE_RATE
    for fmt in ("FLAC", "OGG"):
        frames_read.clear()
        audio_lib.decode(long_files[fmt], RATE)
        assert sum(frames_read) == total
        frames_read.clear()
        decoded = audio_lib.decode(long_files[fmt], RATE, wanted=wanted_by(CFG))
        # 8 windows of 3 s and their context; Ogg also reads short gaps through, here none.
        assert sum(frames_read) <= 8 * (3 + 2 * audio_lib.CONTEXT_SECONDS) * SOURCE_RATE + 8, fmt
        assert len(decoded.samples) == CFG.max_segments_per_track * CFG.segment_samples
    flac = CountingReader(long_files["FLAC"])
    audio_lib.decode(flac, RATE, wanted=wanted_by(CFG))
    assert flac.bytes_read < 0.4 * len(long_files["FLAC"])  # and libsndfile skips the rest of the file


def test_16_bit_mono_at_the_target_rate_stays_bit_exact_when_windowed():
    pcm = np.random.default_rng(1).integers(-20000, 20000, MINUTES * 60 * RATE).astype(np.int16)
    for fmt in ("WAV", "FLAC"):
        data = encoded(pcm[:, None], RATE, fmt, "PCM_16")
        windowed = audio_lib.decode(data, RATE, wanted=wanted_by(CFG))
        assert windowed.lossless
        assert_windows_match(windowed, audio_lib.decode(data, RATE), tolerance=0)


def test_a_30_s_clip_like_gtzans_is_decoded_whole_and_unchanged():
    data = encoded((tone(30.0, amplitude=0.3) + 0.01)[:, None], RATE, "WAV", "PCM_16")
    windowed = audio_lib.decode(data, RATE, wanted=wanted_by(TEST_AUDIO))
    assert windowed.spans == () and windowed.track_samples is None
    np.testing.assert_array_equal(windowed.samples, audio_lib.decode(data, RATE).samples)


def test_a_clip_shorter_than_a_segment_is_still_too_short():
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.load(encoded(music(2.0), SOURCE_RATE, "FLAC", "PCM_16"), RATE, CFG.segment_samples, CFG.silence_dbfs,
                   wanted=wanted_by(CFG))
    assert caught.value.reason == audio_lib.TOO_SHORT


def test_mp3_and_opus_are_decoded_whole():
    """MP3 frame counts are estimates and Opus seeking is not verified here: both keep whole decoding."""
    clip = music(40.0, 48000)
    for fmt, subtype in (("MP3", "MPEG_LAYER_III"), ("OGG", "OPUS")):
        decoded = audio_lib.decode(encoded(clip, 48000, fmt, subtype), RATE, wanted=wanted_by(CFG))
        assert decoded.spans == () and decoded.track_samples is None


def test_an_ogg_window_at_the_very_end_is_not_read_by_seeking_into_the_last_page(long_files):
    """libsndfile returns wrong Vorbis samples after a seek into the stream's last page."""
    whole = audio_lib.decode(long_files["OGG"], RATE)
    n = len(whole.samples)
    windowed = audio_lib.decode(long_files["OGG"], RATE, wanted=lambda m: [(m // 4, m // 4 + 2000), (m - 1500, m)])
    assert windowed.spans == ((n // 4, n // 4 + 2000), (n - 1500, n))
    assert_windows_match(windowed, whole, TOLERANCE)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_a_truncated_long_file_keeps_the_windows_before_the_cut(long_files, fmt):
    """A WAV's frame count is what the file holds (libsndfile shortens its data chunk): the windows spread over
    that, as whole decoding's segments do. A FLAC header keeps its promise: seeking past the cut fails and the
    windows before it are kept. Both are flagged truncated, neither crashes."""
    data = long_files[fmt]
    cut = data[:int(len(data) * 0.55)]
    whole = audio_lib.decode(data, RATE)
    windowed = audio_lib.load(cut, RATE, CFG.segment_samples, CFG.silence_dbfs, wanted=wanted_by(CFG))
    assert windowed.truncated
    kept = ingest.kept_segments(windowed.length, CFG)[2]
    if fmt == "WAV":
        assert windowed.length < 0.56 * len(whole.samples) and len(windowed.spans) == len(kept)
    else:
        assert windowed.length == len(whole.samples) and 0 < len(windowed.spans) < len(kept)
    assert all(end <= 0.56 * len(whole.samples) for _, end in windowed.spans)
    for start, end in windowed.spans:  # what was read is the track's audio
        at = windowed.position(start)
        np.testing.assert_allclose(windowed.samples[at:at + end - start], whole.samples[start:end], atol=TOLERANCE)


def test_silence_is_judged_on_the_kept_windows():
    """A track loud only between its kept segments is silent as far as ingestion keeps it."""
    cfg = dataclasses.replace(CFG, max_segments_per_track=2)  # the first and the last segment
    quiet = np.zeros((MINUTES * 60 * SOURCE_RATE, 1), np.float32)
    quiet[SOURCE_RATE * 30:SOURCE_RATE * 90] = music(60, channels=1)
    data = encoded(quiet, SOURCE_RATE, "FLAC", "PCM_16")
    with pytest.raises(audio_lib.BadAudio) as caught:
        audio_lib.load(data, RATE, cfg.segment_samples, cfg.silence_dbfs, wanted=wanted_by(cfg))
    assert caught.value.reason == audio_lib.SILENT
    assert audio_lib.load(data, RATE, cfg.segment_samples, cfg.silence_dbfs).length == MINUTES * 60 * RATE


def test_ingestion_records_the_tracks_length_and_what_it_decoded(tmp_path, long_files):
    path = tmp_path / "rock.00001.flac"
    path.write_bytes(long_files["FLAC"])
    task = FileTask(path=str(path), rel_path="rock/rock.00001.flac", genre="rock", track_id="rock.00001",
                    split="train", label=1)
    outputs = list(ingest.DecodeToExamples(dataclasses.replace(CFG, train_views=("device",)))._process(task))
    record = next(o.value for o in outputs if o.tag == ingest.FILES)
    assert record["status"] == ingest.INGESTED and not record["truncated"]
    assert record["seconds"] == pytest.approx(MINUTES * 60)
    assert record["decoded_seconds"] == pytest.approx(CFG.max_segments_per_track * CFG.segment_seconds)
    assert record["segments"] == CFG.max_segments_per_track and record["segments_in_track"] == 40
    assert record["view_segments"] == CFG.max_segments_per_track
    assert sum(o.tag == "train" for o in outputs) == 2 * CFG.max_segments_per_track


def test_ogg_windows_closer_than_a_seek_are_read_through(long_files):
    """libsndfile's Vorbis seek decodes forward to a target under 2 s ahead and can return wrong samples there:
    windows closer than OGG_MIN_SEEK_SECONDS share one read."""
    whole = audio_lib.decode(long_files["OGG"], RATE)
    windowed = audio_lib.decode(long_files["OGG"], RATE,
                            wanted=lambda n: [(s, s + 5000) for s in range(100000, 100000 + 8 * 40000, 40000)])
    assert len(windowed.spans) == 8
    assert_windows_match(windowed, whole, TOLERANCE)


def test_a_gtzan_like_clips_examples_are_its_whole_decodings_segments(tmp_path):
    """30 s of 16-bit mono at 22050 Hz: decoded whole, every segment kept, the examples as they always were."""
    cfg = dataclasses.replace(CFG, max_segments_per_track=20)
    pcm = segments.quantize(music(30.0, RATE, channels=1, seed=3)[:, 0])
    path = tmp_path / "jazz.00001.wav"
    path.write_bytes(encoded(pcm[:, None], RATE, "WAV", "PCM_16"))
    task = FileTask(path=str(path), rel_path="jazz/jazz.00001.wav", genre="jazz", track_id="jazz.00001",
                    split="eval", label=5)
    outputs = list(ingest.DecodeToExamples(cfg)._process(task))
    expected = [segments.make_example(piece, genre="jazz", label=5, track_id="jazz.00001", segment_index=i,
                                      sample_rate=RATE, source_path="jazz/jazz.00001.wav")
                for i, piece in enumerate(segments.cut(pcm, cfg.segment_samples, cfg.hop_samples, "drop"))]
    assert [o.value for o in outputs if o.tag == "eval"] == expected and len(expected) == 10
    record = next(o.value for o in outputs if o.tag == ingest.FILES)
    assert record["lossless"] and record["seconds"] == record["decoded_seconds"] == 30.0
