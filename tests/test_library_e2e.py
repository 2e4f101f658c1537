"""A person's music library, labelled by its own genre tags, end to end through `local_runner.main`.

The library is built here from the synthetic generator's audio (and, where the real GTZAN clips lie beside the
project, every other track from a real clip of its genre, FLAC and Ogg Vorbis alike), encoded with PyAV and tagged
with mutagen (tests/testkit/library_files.py), laid out ``Artist/Album/NN Title.ext`` at any depth, with
``Unknown Artist/Unknown Album/01 Track 01`` under two top folders (two tracks, not one), ID3 v2.3, v2.4 and
v1 (a numbered genre) tags in MP3 and AIFF, FLAC and Opus Vorbis comments, AAC and ALAC .m4a atoms, WMA, one file without a genre tag and one genre too rare to keep.
Run with ``--labels tags``: every file has one record (ingested, or excluded with its reason), no album is on
two sides of the split, and the model is pushed. Small on purpose: 13 files of 6 s, the ANN, one epoch.
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import local_runner
from conftest import SHARED_GTZAN, shared_manifest
from synthetic.generator import render_track
from tests.testkit.library_files import encode, tag

# The formats the library is written in: libsndfile's and FFmpeg's (audio/decode.py, audio/av_reader.py).
FORMATS = ("mp3", "flac", "wav", "aac", "alac", "opus", "aiff", "wma")
SECONDS = 6.0
RATE = 22050
BEAM = ["--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory"]
BARS = ["--min-accuracy", "0", "--min-clip-accuracy", "0", "--min-test-clips", "1", "--max-accuracy-drop", "1"]

# (relative path without extension, format, ID3 version (0: not ID3), genre tag or None, artist, album,
#  the genre the run labels it with, or the reason it is left out)
TRACKS = [
    ("The Rockers/First Album/01 Opening", "mp3", 3, "Rock", "The Rockers", "First Album", "rock"),
    ("The Rockers/Second Album/01 Loud", "mp3", 1, "Rock", "The Rockers", "Second Album", "rock"),  # ID3v1: (17)
    ("Garage Band/Demo/CD1/01 Noise", "flac", 0, "rock & roll; pop", "Garage Band", "Demo", "rare_genre"),
    ("rock/Unknown Artist/Unknown Album/01 Track 01", "mp3", 4, "Rock", None, None, "rock"),
    ("Trio/Standards/01 Blue", "flac", 0, "Jazz", "Trio", "Standards", "jazz"),
    ("Trio/Live/01 Swing", "aac", 0, "JAZZ", "Trio", "Live", "jazz"),  # .m4a, MP4 atoms
    ("Quartet/Ballads/02 Slow", "alac", 0, "jazz", "Quartet", "Ballads", "jazz"),
    ("jazz/Unknown Artist/Unknown Album/01 Track 01", "flac", 0, "Jazz", None, None, "jazz"),
    ("MC One/Tape/01 Intro", "aiff", 4, "Hip-Hop", "MC One", "Tape", "hiphop"),  # an ID3 chunk
    ("MC One/Album/01 Rhymes", "mp3", 3, "hip hop/rap", "MC One", "Album", "hiphop"),
    ("MC Two/Mixtape/01 Beat", "opus", 0, "Hip Hop", "MC Two", "Mixtape", "hiphop"),  # Vorbis comments in Ogg
    ("Dub Sound/Version/01 Skank", "wma", 0, "Reggae", "Dub Sound", "Version", "rare_genre"),  # ASF attributes
    ("Misc/untitled", "wav", 0, None, None, None, "no_genre_tag"),
]
# The synthetic genre each file's audio is rendered from.
SOURCE = {"rock": "rock", "jazz": "jazz", "hiphop": "hiphop", "no_genre_tag": "blues"}


def real_clip(genre: str, index: int) -> np.ndarray | None:
    """SECONDS of the ``index``-th real clip of ``genre`` (manifest order, any encoding) at RATE; None where the
    clips are absent."""
    rows = [row for row in shared_manifest() if row["genre"] == genre]
    if not rows:
        return None
    row = rows[index % len(rows)]
    frames = int(SECONDS * int(row["sample_rate"])) + 1
    samples, rate = sf.read(SHARED_GTZAN / row["path"], dtype="float32", frames=frames)
    if rate != RATE:
        samples = soxr.resample(samples, rate, RATE, quality="HQ")
    return np.asarray(samples[:int(SECONDS * RATE)], np.float32)


def build_library(root: Path) -> tuple[dict[str, str], int]:
    """Write TRACKS under ``root``; (relative path -> expected genre or reason, tracks made from real clips). Every
    other track's audio is a real clip where the clips are present (:func:`real_clip`), the synthetic generator's
    otherwise."""
    expected, real = {}, 0
    for index, (rel, fmt, version, genre, artist, album, outcome) in enumerate(TRACKS):
        assert fmt in FORMATS
        source = SOURCE.get(outcome, "reggae")
        samples = real_clip(source, index) if index % 2 else None
        real += samples is not None
        if samples is None:
            samples = render_track(source, index, seconds=SECONDS, sample_rate=RATE)
        path = encode(root / rel, samples, RATE, fmt)
        if genre is not None:
            tag(path, genre=genre, artist=artist, album=album, title=Path(rel).name, id3_version=version or 4)
        expected[path.relative_to(root).as_posix()] = outcome
    return expected, real


@pytest.fixture(scope="module")
def library_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    expected, real = build_library(root)
    assert real == (len(TRACKS) // 2 if shared_manifest() else 0), real
    started = time.time()
    summary = local_runner.main([
        "--data-root", str(root), "--labels", "tags", "--genres-from-data", "--min-tracks-per-genre", "2",
        "--output-dir", str(tmp_path_factory.mktemp("out")), "--model", "ann", "--epochs", "1",
        *BARS, *BEAM])
    return expected, summary, time.time() - started


def _records(summary: dict) -> list[dict]:
    with open(os.path.join(summary["data"]["report"], "files.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_every_file_of_the_library_has_one_record_with_its_genre_or_reason(library_run):
    expected, summary, seconds = library_run
    records = _records(summary)
    assert sorted(r["path"] for r in records) == sorted(expected)  # one each, nothing else
    got = {r["path"]: (r["genre"] if r["status"] == "ingested" else r["reason"]) for r in records}
    assert got == expected, got  # rockandroll and reggae have one track each: rare; both 01 Track 01 are tracks
    assert summary["data"]["excluded"] == {"no_genre_tag": 1, "rare_genre": 2}
    print(f"library run: {seconds:.0f} s")


def test_no_album_is_on_two_sides_of_the_split_and_the_model_is_pushed(library_run):
    _, summary, _ = library_run
    sides = defaultdict(set)
    for r in _records(summary):
        if r["status"] == "ingested":
            sides[(r["genre"], r["group"])].add(r["split"])
    assert sides and all(len(s) == 1 for s in sides.values()), dict(sides)
    assert ("rock", "the rockers/first album") in sides  # grouped by the album artist and album tags
    assert {split for s in sides.values() for split in s} == {"train", "eval", "test"}
    assert summary.get("pushed_to"), summary.get("gate")
