"""The player's audio: by codec (read from the header), not by name; the decoded clip where browsers cannot play it."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from app import clip, playback
from tests.testkit.audio_files import tone
from tests.testkit.library_files import encode
from tests.testkit.serving import stand_in_clip

# encode()'s formats: what browsers play as it is (checked in headless Chromium: its <audio> loads each of these
# and refuses ALAC, AIFF, WMA, CAF and WavPack), None where the page hands them the decoded clip.
AS_IS = {"aac": "audio/mp4", "mp4": "audio/mp4", "adts": "audio/aac", "mp3": "audio/mpeg", "flac": "audio/flac",
         "wav": "audio/wav", "opus": "audio/ogg", "webm": "audio/webm", "alac": None, "caf": None, "wma": None,
         "aiff": None, "aif": None, "aifc": None, "wv": None, "oga": None, "mka": None}  # FLAC in Ogg, Matroska
# libsndfile's encoders: the same container holding a codec browsers play or one they do not.
SNDFILE = [("WAV", "PCM_16", "audio/wav"), ("WAV", "PCM_U8", "audio/wav"), ("WAV", "MS_ADPCM", None),
           ("WAV", "FLOAT", None), ("AU", "PCM_16", None), ("OGG", "VORBIS", "audio/ogg"),
           ("MP3", "MPEG_LAYER_III", "audio/mpeg")]


@pytest.mark.parametrize("fmt", sorted(AS_IS))
def test_the_codec_decides_not_the_name(tmp_path, fmt):
    data = encode(tmp_path / "clip", tone(0.5, rate=44100), 44100, fmt).read_bytes()
    assert playback.playable_mime(data) == AS_IS[fmt]


@pytest.mark.parametrize("container, subtype, mime", SNDFILE)
def test_a_wav_is_played_as_it_is_only_when_it_holds_pcm(container, subtype, mime):
    data = io.BytesIO()
    sf.write(data, tone(0.5), 22050, format=container, subtype=subtype)
    assert playback.playable_mime(data.getvalue()) == mime


def test_an_mp3_behind_a_large_cover_image_is_still_named(tmp_path):
    from mutagen import id3

    path = encode(tmp_path / "song", tone(0.5, rate=44100), 44100, "mp3")
    tags = id3.ID3()
    tags.add(id3.APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=bytes(1_000_000)))
    tags.save(str(path))  # the tag comes first: FFmpeg reads a megabyte of it before the audio
    assert playback.playable_mime(path.read_bytes()) == "audio/mpeg"


def test_bytes_ffmpeg_cannot_open_are_not_handed_over():
    assert playback.playable_mime(b"OggS but not really" * 50) is None


def test_a_playable_upload_is_handed_over_unchanged(tmp_path):
    data = encode(tmp_path / "song", stand_in_clip("pop", 4.0, sample_rate=44100), 44100, "aac").read_bytes()
    assert playback.for_browser(data, clip.decode("song.m4a", data, 600.0)) == (data, "audio/mp4")


@pytest.mark.parametrize("rate, played_rate", [(44100, 44100), (96000, playback.MAX_RATE)])
def test_alac_is_played_as_the_decoded_clip_at_its_own_level(tmp_path, rate, played_rate):
    samples = 0.3 * stand_in_clip("pop", 4.0, sample_rate=rate)  # quiet: played at its level, not raised to full scale
    data = encode(tmp_path / "song", samples, rate, "alac").read_bytes()
    decoded = clip.decode("song.m4a", data, 600.0)
    wav, mime = playback.for_browser(data, decoded)
    played, played_at = sf.read(io.BytesIO(wav), dtype="float32")
    assert mime == "audio/wav" and played_at == played_rate
    assert abs(played.size / played_rate - decoded.seconds) < 0.01
    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    assert rms(played) == pytest.approx(rms(decoded.waveform), rel=0.02)
    if rate == played_rate:
        np.testing.assert_allclose(played, decoded.waveform, atol=1 / 32768)
