"""The page's too-quiet and too-noisy rules: steady noise is refused, music (synthetic, real, through a device) is not."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from app import audibility, clip
from evaluation import channels
from config.settings import GENRES
from conftest import shared_manifest
from synthetic.generator import render_track
from tests.testkit.audio_files import wav_bytes

RATE = 22050


def steady_noises(seconds: float = 8.0) -> dict[str, np.ndarray]:
    """White and pink noise, and white noise through a fan's band and through the device channel's band."""
    rng = np.random.default_rng(0)
    white = rng.standard_normal(int(seconds * RATE))
    f = np.fft.rfftfreq(white.size, 1 / RATE)
    f[0] = f[1]
    noises = {"white": white, "pink": np.fft.irfft(np.fft.rfft(white) / np.sqrt(f), white.size),
              "fan band": channels.band_limit(white, RATE, 100.0, 2000.0)[0],
              "device band": channels.band_limit(white, RATE)[0]}
    return {name: (0.1 * x / np.std(x)).astype(np.float32) for name, x in noises.items()}


@pytest.mark.parametrize("name", list(steady_noises(1.0)))
def test_steady_noise_is_refused_as_too_noisy(name):
    noise = steady_noises()[name]
    assert audibility.music_over_floor_db(noise, RATE) < audibility.STEADY_NOISE_DB
    with pytest.raises(clip.ClipError, match=r"^hum.wav is too noisy to judge: it sounds like steady noise"):
        clip.decode("hum.wav", wav_bytes(noise, RATE), max_seconds=600.0)


@pytest.mark.parametrize("genre", GENRES)
def test_synthetic_music_passes_as_sent_and_through_a_device(genre):
    track = render_track(genre, 0, seconds=9.0, sample_rate=RATE, seed=5)
    assert audibility.problem("song.wav", track, RATE, recorded=True) is None
    heard = channels.device(track, RATE, seed=1)[0]
    assert audibility.problem("song.wav", heard, RATE, recorded=True) is None


def test_a_quiet_recording_is_refused_and_the_same_clip_uploaded_is_not():
    track = render_track("jazz", 0, seconds=9.0, sample_rate=RATE, seed=5)
    quiet = (track * 10 ** (-58 / 20) / np.sqrt(np.mean(track ** 2))).astype(np.float32)  # -58 dBFS
    data = wav_bytes(quiet, RATE, subtype="FLOAT")
    with pytest.raises(clip.ClipError, match=r"^recording.wav is too quiet to judge: its level is -58 dBFS, below "
                                             r"the -50 dBFS this page needs from a microphone"):
        clip.decode("recording.wav", data, max_seconds=600.0, recorded=True)
    assert clip.decode("quiet.wav", data, max_seconds=600.0).waveform.size == quiet.size


def test_a_long_clip_is_measured_a_block_at_a_time():
    long = np.tile(render_track("rock", 0, seconds=6.0, sample_rate=RATE, seed=2), 20)  # 2 min
    powers = audibility.band_powers(long, RATE)
    assert powers.shape == (audibility.BANDS, 1 + (long.size - audibility.N_FFT) // audibility.HOP)
    one_go = audibility._mel(RATE) @ (np.abs(np.fft.rfft(
        np.lib.stride_tricks.sliding_window_view(long, audibility.N_FFT)[::audibility.HOP]
        * np.hanning(audibility.N_FFT), axis=1)) ** 2).T
    np.testing.assert_allclose(powers, one_go, rtol=1e-3, atol=1e-6)


@pytest.mark.real_data
def test_every_real_clip_passes_and_two_of_each_genre_through_a_device(shared_gtzan):
    """Every real clip as sent (the rule's margin is measured on them); through the device channel, the first
    FLAC and the first Ogg clip of each genre (the channel costs more than the check)."""
    rows, refused, through_device = shared_manifest(), [], set()
    for i, row in enumerate(rows):
        x, rate = sf.read(shared_gtzan / row["path"], dtype="float32")
        sent = [("as sent", x)]
        if (row["genre"], row["encoding"]) not in through_device:
            through_device.add((row["genre"], row["encoding"]))
            sent.append(("through a device", channels.device(x, rate, seed=i)[0]))
        refused += [f"{how}: {message}" for how, y in sent
                    if (message := audibility.problem(row["path"], y, rate, recorded=True))]
    assert len(rows) == 456 and len(through_device) == 20
    assert not refused, refused[:5]
