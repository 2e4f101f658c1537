"""evaluation/channels.py: each channel does to a clip what its name says (level, band, SNR, rate, length),
and the same seed gives the same samples. Codecs are libsndfile's own (the soundfile wheel), nothing mocked."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import channels
from bench.serving import bench_clip

RATE = 22050


def db(power_ratio: float) -> float:
    return 10.0 * np.log10(power_ratio)


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def tone(hz: float, seconds: float = 2.0, rate: int = RATE, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def band_power_db(x: np.ndarray, rate: int, low: float, high: float) -> float:
    """Mean power spectral density (dB) between LOW and HIGH Hz; a Hann window keeps the clip's ends (a
    filter starting from rest, a cut reverberation tail) from leaking into every band."""
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size))) ** 2
    return db(spectrum[(freqs >= low) & (freqs < high)].mean())


@pytest.mark.parametrize("gain_db", [-6, -12, -24])
def test_gain_changes_the_level_by_its_decibels(gain_db):
    clip = bench_clip(3.0, RATE)
    out, rate = channels.gain(clip, RATE, gain_db)
    assert rate == RATE and out.dtype == np.float32 and out.shape == clip.shape
    assert db(power(out) / power(clip)) == pytest.approx(gain_db, abs=1e-3)


def test_positive_gain_clips_at_full_scale_and_scales_the_rest():
    clip = np.linspace(-0.9, 0.9, 1001, dtype=np.float32)
    out, _ = channels.gain(clip, RATE, 6)
    factor = 10 ** (6 / 20)
    assert out.max() == 1.0 and out.min() == -1.0
    loud = np.abs(clip) * factor > 1
    assert 0 < loud.sum() < clip.size
    np.testing.assert_allclose(out[~loud], clip[~loud] * factor, rtol=1e-6)


@pytest.mark.parametrize("target", [8000, 16000, 44100, 48000])
def test_resample_gives_the_rate_and_length_and_keeps_a_tone(target):
    clip = tone(1000.0)
    out, rate = channels.resample(clip, RATE, target)
    assert rate == target and out.dtype == np.float32
    assert abs(out.size - clip.size * target / RATE) <= 1
    assert db(power(out) / power(clip)) == pytest.approx(0.0, abs=0.1)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.fft.rfftfreq(out.size, 1.0 / rate)[spectrum.argmax()] == pytest.approx(1000.0, abs=1.0)


def test_resample_to_8_khz_removes_what_8_khz_cannot_hold():
    out, _ = channels.resample(tone(5000.0), RATE, 8000)  # above 4 kHz: gone, not folded back to 3 kHz
    assert db(power(out) / power(tone(5000.0))) < -40


def test_mp3_is_128_kbits_constant_at_44_1_khz_and_survives_the_round_trip():
    clip = bench_clip(10.0, RATE)
    data = channels.encode(clip, RATE, "mp3")
    frame = data.index(b"\xff\xfb")  # MPEG-1 layer III frame sync (after any ID3 tag)
    assert data[frame + 2] >> 4 == 9  # bitrate index 9 of MPEG-1 layer III: 128 kbit/s
    assert (data[frame + 2] >> 2) & 3 == 0  # sample-rate index 0 of MPEG-1: 44.1 kHz
    assert data[frame + 3] >> 6 != 3  # channel mode is not mono
    assert len(data) * 8 / 10.0 / 1000 == pytest.approx(128, rel=0.03)
    out, rate = channels.codec(clip, RATE, "mp3")
    reference, _ = channels.resample(clip, RATE, 44100)
    assert rate == 44100 and out.size == reference.size  # decoded gaplessly: no encoder delay left
    assert db(power(reference) / power(out - reference)) > 15  # a lossy copy of the same samples, aligned


def test_vorbis_round_trip_is_a_stereo_ogg_at_44_1_khz():
    clip = bench_clip(10.0, RATE)
    data = channels.encode(clip, RATE, "vorbis")
    assert data[:4] == b"OggS" and b"\x01vorbis" in data[:200]
    header = data.index(b"\x01vorbis")
    assert data[header + 11] == 2  # audio channels
    assert int.from_bytes(data[header + 12:header + 16], "little") == 44100
    out, rate = channels.codec(clip, RATE, "vorbis")
    reference, _ = channels.resample(clip, RATE, 44100)
    assert rate == 44100 and out.size == reference.size
    assert db(power(reference) / power(out - reference)) > 15


def test_unknown_codec_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown codec 'aac'"):
        channels.encode(tone(440.0), RATE, "aac")


WIDE = 44100  # a rate with room for an octave above the device's 7 kHz
STOP_BANDS = ((20, 75), (14000, 20000))  # an octave or more beyond each edge (150 Hz, 7 kHz)


def test_band_limit_keeps_the_band_and_strongly_attenuates_outside_it():
    noise = np.random.default_rng(0).standard_normal(5 * WIDE).astype(np.float32) * 0.1
    out, rate = channels.band_limit(noise, WIDE)
    assert rate == WIDE and out.shape == noise.shape
    assert band_power_db(out, WIDE, 400, 4000) == pytest.approx(band_power_db(noise, WIDE, 400, 4000), abs=0.5)
    for low, high in STOP_BANDS:
        assert band_power_db(out, WIDE, low, high) < band_power_db(noise, WIDE, low, high) - 40


def test_band_limit_below_7_khz_of_nyquist_keeps_only_the_low_edge():
    out, _ = channels.band_limit(tone(3500.0, rate=8000), 8000)  # 8 kHz audio has nothing above 4 kHz
    assert db(power(out[4000:]) / power(tone(3500.0, rate=8000)[4000:])) == pytest.approx(0.0, abs=0.5)


def test_room_impulse_response_decays_by_60_db_over_rt60_and_is_seeded():
    rt60, rate = 0.3, 16000
    ir = channels.room_impulse_response(rate, seed=5, rt60=rt60, drr_db=3.0)
    assert ir.size == int(rt60 * rate) and ir[0] == 1.0
    assert db(1.0 / np.sum(ir[1:] ** 2)) == pytest.approx(3.0, abs=1e-9)  # direct to reverberant
    energy = ir[1:] ** 2
    window = rate // 50  # 20 ms
    early, late = energy[:window].mean(), energy[-2 * window:-window].mean()
    seconds_apart = (ir.size - 1 - 2 * window) / rate
    decay_db_per_second = db(early / late) / seconds_apart
    assert decay_db_per_second == pytest.approx(60 / rt60, rel=0.15)
    np.testing.assert_array_equal(ir, channels.room_impulse_response(rate, seed=5, rt60=rt60))
    assert not np.allclose(ir, channels.room_impulse_response(rate, seed=6, rt60=rt60))


def test_reverberation_keeps_the_length_and_adds_a_tail():
    click = np.zeros(RATE, np.float32)
    click[100] = 0.5
    out, rate = channels.reverberate(click, RATE, seed=1)
    assert rate == RATE and out.shape == click.shape and out[100] == pytest.approx(0.5)
    assert np.abs(out[:100]).max() < 1e-12  # causal (FFT rounding aside)
    tail = out[101:101 + int(0.3 * RATE)]
    assert np.sum(tail ** 2) == pytest.approx(0.25 * 10 ** (-3.0 / 10), rel=1e-5)


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_add_noise_hits_the_snr(snr_db):
    clip = bench_clip(3.0, RATE)
    out, _ = channels.add_noise(clip, RATE, snr_db, seed=3)
    assert db(power(clip) / power(out - clip)) == pytest.approx(snr_db, abs=0.01)


def test_device_channel_is_band_limited_noisy_at_30_db_and_seeded():
    clip = bench_clip(6.0, WIDE) + 0.1 * np.random.default_rng(1).standard_normal(6 * WIDE).astype(np.float32)
    out, rate = channels.device(clip, WIDE, seed=7)
    clean, _ = channels.device(clip, WIDE, seed=7, snr_db=None)
    assert rate == WIDE and out.shape == clip.shape and out.dtype == np.float32
    assert np.abs(out).max() <= 1.0
    assert db(power(clean) / power(out - clean)) == pytest.approx(30.0, abs=0.2)
    for low, high in STOP_BANDS:  # the noise too lies in the device's band
        assert band_power_db(out, WIDE, low, high) < band_power_db(clip, WIDE, low, high) - 40
    np.testing.assert_array_equal(out, channels.device(clip, WIDE, seed=7)[0])
    assert not np.array_equal(out, channels.device(clip, WIDE, seed=8)[0])
    # the room is there: the device's copy is not the band-limited clip alone, and the tail is 3 dB
    # below the direct sound (its energy adds to the clip's)
    dry, _ = channels.band_limit(clip, WIDE)
    assert db(power(dry) / power(clean - dry)) == pytest.approx(3.0, abs=1.0)


def test_the_benchmark_applies_every_channel_it_names():
    clip = bench_clip(4.0, RATE)
    named = channels.channels(seed=0)
    rates = {"MP3": 44100, "Ogg": 44100, "resampled to 8 kHz": 8000, "resampled to 16 kHz": 16000,
             "resampled to 44.1 kHz": 44100, "resampled to 48 kHz": 48000}
    assert len(named) == 11
    for name, channel in named.items():
        out, rate = channel(clip, RATE)
        assert out.dtype == np.float32 and np.abs(out).max() <= 1.0, name
        assert abs(out.size / rate - 4.0) < 0.01, name
        assert rate == next((r for prefix, r in rates.items() if name.startswith(prefix)), RATE), name
        assert not np.array_equal(out, clip), name
    np.testing.assert_array_equal(named["gain -12 dB"](clip, RATE)[0], channels.gain(clip, RATE, -12)[0])
