"""The TF front end against an independent numpy STFT (CI) and the reference implementation's mel (../shared)."""
import numpy as np
import pytest

from models.efficientat import log_mel as fe


def numpy_log_mel(waveform: np.ndarray) -> np.ndarray:
    """The recipe written plainly in float64 numpy: framing by slicing, one rfft per frame."""
    emphasised = waveform[:, 1:] - fe.PREEMPHASIS * waveform[:, :-1]
    half = fe.N_FFT // 2
    padded = np.pad(emphasised, ((0, 0), (half, half)), mode="reflect")
    frames = fe.num_frames(waveform.shape[1])
    starts = np.arange(frames) * fe.HOP_LENGTH
    window = np.zeros(fe.N_FFT)
    window[112:912] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 799)
    framed = np.stack([padded[:, s:s + fe.N_FFT] for s in starts], axis=1) * window
    power = np.abs(np.fft.rfft(framed, axis=-1)) ** 2
    mel = np.einsum("btf,mf->bmt", power, fe.kaldi_mel_basis().astype(np.float64))
    return (np.log(mel + 1e-5) + 4.5) / 5.0


def test_mel_bank_is_kaldi_triangles_up_to_15_khz():
    bank = fe.kaldi_mel_basis()
    assert bank.shape == (128, 513) and bank.dtype == np.float32
    assert np.all(bank[:, -1] == 0)  # the appended Nyquist column
    assert np.all(bank >= 0) and np.all(bank.max(axis=1) > 0) and bank.max() <= 1
    bin_hz = 32000 / 1024
    assert bank[:, int(np.ceil(15000 / bin_hz)):].sum() == 0  # nothing above f_max
    centres = bank.argmax(axis=1)
    assert np.all(np.diff(centres) >= 0)  # bands ascend


def test_mel_bank_rejects_bad_edges():
    with pytest.raises(ValueError, match="f_min < f_max"):
        fe.kaldi_mel_basis(f_min=16000.0, f_max=15000.0)


def test_window_is_symmetric_hann_centred():
    window = fe.padded_window()
    assert window.shape == (1024,)
    assert np.allclose(window, window[::-1]) and window[:112].sum() == 0 and window[912:].sum() == 0
    assert window[112] == 0 and window[911] == 0 and np.isclose(window.max(), 1.0, atol=1e-5)


def test_frontend_matches_numpy_recipe_on_noise():
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 32000)).astype(np.float32)
    mel = fe.frontend(waveform).numpy()
    assert mel.shape == (2, 128, 100) == (2, 128, fe.num_frames(32000))
    np.testing.assert_allclose(mel, numpy_log_mel(waveform.astype(np.float64)), atol=1e-3)


def test_num_frames_of_ten_seconds_is_one_thousand():
    assert fe.num_frames(320000) == 1000


@pytest.mark.real_data
def test_mel_bank_matches_reference(mn04_reference):
    np.testing.assert_allclose(fe.kaldi_mel_basis(), mn04_reference["mel_basis"], atol=1e-4)


@pytest.mark.real_data
def test_frontend_matches_reference(mn04_reference):
    mel = fe.frontend(mn04_reference["waveform_int16"] / 32768.0).numpy()
    assert mel.shape == mn04_reference["mel"].shape
    np.testing.assert_allclose(mel, mn04_reference["mel"], atol=1e-3)
