"""Audio files for tests: tones as WAV bytes, a corrupt and a truncated WAV, headers that lie, and every
kind of bad, odd or hostile entry a data root can hold, with the fate ingestion gives each."""
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import struct
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pytest
import soundfile as sf

from config.settings import AudioConfig

RATE = 22050
# 1 s segments keep the files tiny while still giving several segments per track.
TEST_AUDIO = AudioConfig(sample_rate=RATE, segment_seconds=1.0, hop_seconds=1.0)


def touch(root: Path, *rels: str) -> None:
    """Create each relative path under ROOT as a one-byte file (its folders too): enough for listing rules."""
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def tone(seconds: float, rate: int = RATE, amplitude: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = RATE, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def corrupt_wav_bytes(seed: int = 54) -> bytes:
    """Like GTZAN's jazz.00054.wav: a RIFF/WAVE header, then garbage instead of chunks."""
    body = np.random.default_rng(seed).bytes(4000)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body


def truncated_wav_bytes(claimed_seconds: float = 4.0, kept_seconds: float = 0.3) -> bytes:
    """A valid header promising ``claimed_seconds``, with the body cut after ``kept_seconds``."""
    whole = wav_bytes(tone(claimed_seconds))
    return whole[:44 + int(kept_seconds * RATE) * 2]


# name -> (relative path, bytes, expected outcome: a quarantine reason or "ingested")
BAD_AND_ODD_FILES: dict[str, tuple[str, Any, str]] = {
    "corrupt": ("jazz/jazz.00054.wav", corrupt_wav_bytes, "undecodable"),
    "empty": ("blues/blues.00090.wav", lambda: b"", "empty"),
    "truncated": ("rock/rock.00091.wav", truncated_wav_bytes, "too_short"),
    "silent": ("disco/disco.00092.wav", lambda: wav_bytes(np.zeros(3 * RATE, np.float32)), "silent"),
    "not_audio": ("pop/pop.00093.wav", lambda: b"This is a text file, not audio.\n" * 20, "not_audio"),
    "unknown_genre": ("polka/polka.00000.wav", lambda: wav_bytes(tone(3.0)), "unknown_genre"),
    "resampled": ("classical/classical.00094.wav", lambda: wav_bytes(tone(3.0, 44100), 44100), "ingested"),
    "stereo": ("country/country.00095.wav",
               lambda: wav_bytes(np.stack([tone(3.0), tone(3.0, amplitude=0.25, freq=660)], axis=1)), "ingested"),
}


def with_header(wav: bytes, *, rate: Optional[int] = None, data_size: Optional[int] = None) -> bytes:
    """A mono 16-bit WAV (libsndfile's 44-byte header) whose header declares another sample rate
    or data-chunk size; the samples stay as they are."""
    out = bytearray(wav)
    assert out[12:16] == b"fmt " and out[36:40] == b"data"
    if rate is not None:
        struct.pack_into("<II", out, 24, rate, 2 * rate)  # sample rate, byte rate
    if data_size is not None:
        struct.pack_into("<I", out, 40, data_size)
    return bytes(out)


def _symlink_to_nowhere(path: Path) -> None:
    path.symlink_to(path.parent / "no-such-file.wav")


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)  # points at itself


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _locked(path: Path) -> None:
    path.write_bytes(wav_bytes(tone(3.0)))
    path.chmod(0)


LONG_SECONDS = 600.0  # a 10-minute track: 600 one-second segments before the per-track cap

# name -> (relative path, how to create it, expected outcome: a quarantine reason, "truncated" or "cut").
# Entries that are not files are made by a function of the path; files by a function returning bytes.
HOSTILE_FILES: dict[str, tuple[str, Callable, str]] = {
    "dangling_link": ("rock/rock.00080.wav", _symlink_to_nowhere, "broken_link"),
    "link_loop": ("rock/rock.00081.wav", _symlink_loop, "link_loop"),
    "folder": ("jazz/jazz.00082.wav", lambda path: path.mkdir(), "is_directory"),
    "fifo": ("jazz/jazz.00083.wav", _fifo, "special_file"),
    "unreadable": ("pop/pop.00084.wav", _locked, "unreadable"),
    "one_hertz": ("blues/blues.00085.wav", lambda: with_header(wav_bytes(tone(0.1)), rate=1), "bad_sample_rate"),
    "huge_header": ("blues/blues.00086.wav", lambda: with_header(wav_bytes(tone(0.1)), data_size=0xFFFFFFF0),
                    "too_long"),
    "truncated": ("disco/disco.00087.wav", lambda: truncated_wav_bytes(claimed_seconds=4.0, kept_seconds=2.5),
                  "truncated"),
    "ten_minutes": ("metal/metal.00088.wav", lambda: wav_bytes(tone(LONG_SECONDS, amplitude=0.3)), "cut"),
}


@contextlib.contextmanager
def refused_as_root(*paths: Path) -> Iterator[None]:
    """Make chmod 000 files unreadable for this process, also as root.

    Root opens any file whatever its mode (and these tests run as root here), so for root
    filecheck's open() is replaced by one that refuses ``paths`` with EACCES, as the kernel
    refuses any other user; the code path after the refusal is the real one.
    """
    if os.geteuid() != 0:
        yield
        return
    from audio import filecheck

    refused = {str(p) for p in paths}

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) in refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return open(file, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(filecheck, "open", guarded_open, raising=False)
        yield


def write_hostile_files(root: Path) -> None:
    for rel, make, _ in HOSTILE_FILES.values():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if make.__code__.co_argcount:
            make(path)
        else:
            path.write_bytes(make())


def copy_tracks(source: Path, target: Path) -> None:
    for path in source.rglob("*.wav"):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def write_bad_and_odd_files(root: Path) -> None:
    for rel, make, _ in BAD_AND_ODD_FILES.values():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
