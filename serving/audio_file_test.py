"""The client's reader on every container the pipeline reads, and the client naming the same list."""
from __future__ import annotations

import numpy as np
import pytest

from config.settings import AUDIO_EXTENSIONS
from serving.audio_file import AudioFileError, AudioTooLongError, read_audio
from tests.testkit.library_files import encode
from tests.testkit.serving import stand_in_clip

RATE = 44100


@pytest.mark.parametrize("fmt", ["aac", "alac", "opus", "wma", "webm", "aiff", "mka", "caf"])
def test_library_formats_decode_to_mono_at_their_native_rate(tmp_path, fmt):
    clip = stand_in_clip("country", seconds=4, sample_rate=RATE)  # level 0.22
    path = encode(tmp_path / "clip", np.stack([2 * clip, np.zeros_like(clip)], axis=1), RATE, fmt)
    assert path.suffix.lstrip(".") in AUDIO_EXTENSIONS
    waveform, sample_rate = read_audio(path)
    assert sample_rate == (48000 if fmt in ("opus", "webm") else RATE)
    assert waveform.ndim == 1 and waveform.dtype == np.float32
    # The mono mix averages the channels: level 0.22, where the left channel alone would be 0.44.
    assert np.sqrt(np.mean(waveform[sample_rate:-sample_rate] ** 2)) == pytest.approx(0.22, rel=0.05)


def test_an_m4a_over_the_cap_is_refused_from_its_header(tmp_path):
    path = encode(tmp_path / "long", stand_in_clip("jazz", seconds=4, sample_rate=RATE), RATE, "aac")
    with pytest.raises(AudioTooLongError) as refused:
        read_audio(path, max_seconds=2.0)
    assert refused.value.declared_seconds == pytest.approx(4.0, abs=0.01)


def test_a_decoding_error_names_the_formats_read(tmp_path):
    path = tmp_path / "broken.m4a"
    path.write_bytes(b"\0\0\0\x20ftypM4A " + b"\0" * 100)
    with pytest.raises(AudioFileError, match=r"cannot decode audio file .*broken.m4a.*m4a, mp4"):
        read_audio(path)


def test_the_client_help_names_every_extension():
    from serving.client import _parser

    predict = _parser()._subparsers._group_actions[0].choices["predict"]
    text = predict.format_help()
    assert all(ext in text for ext in AUDIO_EXTENSIONS)
