"""Listing and decoding for the tagger: ingestion's reader and reasons, files found by folder or glob."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from config.errors import UserError
from config.settings import AudioConfig
from tagging import files

AUDIO = AudioConfig(sample_rate=22050, segment_seconds=1.0, hop_seconds=1.0)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    tone = 0.3 * np.sin(np.arange(22050 * 2) * 0.05).astype(np.float32)
    sf.write(tmp_path / "a" / "b" / "deep.flac", tone, 22050, subtype="PCM_16")
    sf.write(tmp_path / "a" / "top.WAV", tone, 44100, subtype="PCM_24")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / "fake.wav").write_text("not audio")
    os.mkfifo(tmp_path / "a" / "pipe.wav")
    return tmp_path


def test_a_folder_is_searched_recursively_and_other_extensions_are_ignored(folder):
    listing = files.list_audio(str(folder))
    assert [rel for _, rel in listing.files] == ["a/b/deep.flac", "a/fake.wav", "a/top.WAV"]
    assert listing.quarantined == [{"path": "a/pipe.wav", "reason": "special_file",
                                    "detail": "a FIFO (named pipe) named like an audio file"}]
    assert listing.ignored == ["a/notes.txt"]
    globbed = files.list_audio(str(folder / "a" / "*.wav"))
    assert ([rel for _, rel in globbed.files], [q["path"] for q in globbed.quarantined]) == (["fake.wav"], ["pipe.wav"])
    with pytest.raises(UserError, match="does not exist"):
        files.list_audio(str(folder / "missing"))


def test_decoding_gives_the_model_input_or_ingestions_quarantine_reason(folder):
    deep = files.decode_file(str(folder / "a/b/deep.flac"), "a/b/deep.flac", AUDIO)
    assert deep["waveform"].dtype == np.float32 and deep["sample_rate"] == 22050 and deep["seconds"] == 2.0
    resampled = files.decode_file(str(folder / "a/top.WAV"), "a/top.WAV", AUDIO)  # 44.1 kHz 24-bit -> 22.05 kHz
    assert abs(len(resampled["waveform"]) - 22050) <= 1  # the 44100 samples are 1 s at 44.1 kHz
    assert files.decode_file(str(folder / "a/fake.wav"), "a/fake.wav", AUDIO)["reason"] == "not_audio"
    assert files.decode_file(str(folder / "a/pipe.wav"), "a/pipe.wav", AUDIO)["reason"] == "special_file"


def test_chunks_keep_order_and_size():
    assert files.chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_decoding_ahead_gives_every_files_clip_or_quarantine_in_order(folder):
    chunk = [(str(folder / rel), rel) for rel in ("a/b/deep.flac", "a/fake.wav", "a/pipe.wav", "a/top.WAV")]
    ahead = list(files.decode_ahead(chunk, AUDIO, depth=2))
    assert [c["path"] for c in ahead] == [rel for _, rel in chunk]
    for got, want in zip(ahead, (files.decode_file(path, rel, AUDIO, audio_hash=True) for path, rel in chunk)):
        assert got.keys() == want.keys()
        if "waveform" in want:
            np.testing.assert_array_equal(got["waveform"], want["waveform"])
        else:
            assert got["reason"] == want["reason"]
