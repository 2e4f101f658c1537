"""The synthetic set: deterministic, GTZAN-shaped files, atomic writes, manifest-marked completion."""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from synthetic import generator
from synthetic.generator import MANIFEST, RECIPES, generate, is_complete, render_track

SMALL = dict(tracks_per_genre=2, seconds=1.5, seed=3)


def track_paths(out_dir: Path, tracks_per_genre: int) -> list[Path]:
    return [path for path, _, _ in generator._flat_tracks(Path(out_dir), tracks_per_genre, generator.GENRES)]


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]  # hidden names included


def test_render_is_deterministic_and_differs_per_track():
    a = render_track("metal", 4, seconds=2.0, seed=1)
    assert a.dtype == np.float32 and a.shape == (44100,)
    assert np.array_equal(a, render_track("metal", 4, seconds=2.0, seed=1))
    assert not np.allclose(a, render_track("metal", 5, seconds=2.0, seed=1))
    assert not np.allclose(a, render_track("metal", 4, seconds=2.0, seed=2))
    assert 0.4 < np.max(np.abs(a)) <= 0.9 + 1e-6  # peak level drawn in [0.5, 0.9], noise included


def test_every_genre_renders_at_other_rates_and_lengths():
    for genre in RECIPES:
        for rate, seconds in ((16000, 0.7), (22050, 3.0)):
            clip = render_track(genre, 0, seconds=seconds, sample_rate=rate)
            assert clip.shape == (round(seconds * rate),) and np.all(np.isfinite(clip)) and clip.std() > 0.01


def test_generate_writes_a_gtzan_shaped_set_and_marks_it_complete(tmp_path):
    calls = []
    paths = generate(tmp_path, **SMALL, progress=lambda done, total: calls.append((done, total)))
    assert paths == track_paths(tmp_path, 2) and len(paths) == 20 and calls[-1] == (20, 20)
    info = sf.info(str(paths[0]))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (22050, 1, "PCM_16", 33075)
    audio, _ = sf.read(str(tmp_path / "jazz" / "jazz.00001.wav"), dtype="float32")
    np.testing.assert_allclose(audio, render_track("jazz", 1, 1.5, 22050, 3), atol=2 / 32768)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["set"]["seed"] == 3 and len(manifest["files"]) == 20
    assert is_complete(tmp_path, **SMALL) and not is_complete(tmp_path, 2, 1.5, 4)
    assert _leftovers(tmp_path) == []

    calls.clear()
    assert generate(tmp_path, **SMALL, progress=lambda *a: calls.append(a)) == paths
    assert calls == []  # a complete set is not touched, and says nothing


def test_a_killed_generation_is_resumed_not_trusted(tmp_path):
    paths = generate(tmp_path, **SMALL)
    before = {p: os.stat(p) for p in paths}
    # What a kill leaves: no manifest, one track not yet written, a temp file of the track in flight.
    (tmp_path / MANIFEST).unlink()
    paths[7].unlink()
    orphan = tmp_path / f".{paths[7].name}.abc.tmp"
    orphan.write_bytes(b"half a")
    os.utime(orphan, (1e9, 1e9))  # old: no live writer owns it any more
    assert not is_complete(tmp_path, **SMALL)
    generate(tmp_path, **SMALL)
    assert is_complete(tmp_path, **SMALL) and paths[7].exists() and _leftovers(tmp_path) == []
    kept = [p for p in paths if p != paths[7]]
    assert all(os.stat(p).st_ino == before[p].st_ino and os.stat(p).st_mtime_ns == before[p].st_mtime_ns
               for p in kept)  # finished tracks of the same settings were kept, not rewritten


def test_files_of_another_generator_version_are_rewritten(tmp_path):
    stale = tmp_path / "blues" / "blues.00000.wav"
    stale.parent.mkdir()
    sf.write(str(stale), np.zeros(100, np.float32), 22050, subtype="PCM_16")  # no stamp: not this generator's
    generate(tmp_path, **SMALL)
    assert sf.info(str(stale)).frames == 33075


def test_a_failed_write_leaves_no_file_and_no_manifest(tmp_path, monkeypatch):
    # Injected fault: soundfile writes half a file, then fails (a full disk, a kill mid-write).
    def failing_write(path, *args, **kwargs):
        Path(path).write_bytes(b"RIFF....")
        raise OSError("No space left on device")

    monkeypatch.setattr(generator.sf, "write", failing_write)
    with pytest.raises(OSError, match="No space"):
        generate(tmp_path, **SMALL)
    assert not (tmp_path / MANIFEST).exists() and _leftovers(tmp_path) == []
    assert not any(p.exists() for p in track_paths(tmp_path, 2))


def _generate_in_process(root: str, start) -> None:
    start.wait(timeout=120)  # both processes write the same tracks at the same time
    generate(root, tracks_per_genre=8, seconds=4.0, seed=0)


def test_two_concurrent_generations_of_one_set_both_succeed(tmp_path):
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_generate_in_process, args=(str(tmp_path), start)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]
    assert is_complete(tmp_path, 8, 4.0, 0) and _leftovers(tmp_path) == []
    audio, _ = sf.read(str(tmp_path / "rock" / "rock.00007.wav"), dtype="float32")
    np.testing.assert_allclose(audio, render_track("rock", 7, 4.0), atol=2 / 32768)


def test_library_layout_places_tracks_by_artist_and_album_with_repeated_names():
    paths = [generator.library_relative_path("rock", i, tracks_per_album=3, albums_per_artist=2) for i in range(8)]
    assert paths[:4] == ["rock/Rock Artist 1/Album 1/01 Intro.wav", "rock/Rock Artist 1/Album 1/02 Home.wav",
                         "rock/Rock Artist 1/Album 1/03 Night Drive.wav", "rock/Rock Artist 1/Album 2/01 Intro.wav"]
    assert paths[6] == "rock/Rock Artist 2/Album 1/01 Intro.wav" and len(set(paths)) == 8
    assert len({p.rsplit("/", 1)[1] for p in paths}) == 3  # file names repeat across albums and artists


def test_generate_library_renders_the_same_tracks_as_the_flat_set(tmp_path):
    paths = generator.generate_library(tmp_path, 3, seconds=1.0, seed=3, tracks_per_album=2, albums_per_artist=1)
    third_blues = tmp_path / "blues" / "Blues Artist 2" / "Album 1" / "01 Intro.wav"
    assert len(paths) == 30 and paths[2] == third_blues
    audio, rate = sf.read(str(third_blues), dtype="float32")
    assert rate == 22050
    np.testing.assert_allclose(audio, render_track("blues", 2, 1.0, 22050, 3), atol=2 / 32768)
    shape = dict(seconds=1.0, seed=3, tracks_per_album=2, albums_per_artist=1)
    assert generator.is_library_complete(tmp_path, 3, **shape)
    assert not generator.is_library_complete(tmp_path, 3, **{**shape, "tracks_per_album": 3})
    assert not is_complete(tmp_path, 3, 1.0, 3)  # a library is not the flat set of the same tracks
    assert _leftovers(tmp_path) == []


def test_a_full_length_library_is_stereo_flac_at_the_rate_asked(tmp_path):
    paths = generator.generate_library(tmp_path, 1, seconds=2.0, sample_rate=44100, genres=("metal",),
                                       audio_format="flac", channels=2, tracks_per_album=1)
    assert paths == [tmp_path / "metal" / "Metal Artist 1" / "Album 1" / "01 Intro.flac"]
    info = sf.info(str(paths[0]))
    assert (info.format, info.samplerate, info.channels, info.frames) == ("FLAC", 44100, 2, 88200)
    audio, _ = sf.read(str(paths[0]), dtype="float32")
    np.testing.assert_allclose(audio[:, 0], render_track("metal", 0, 2.0, 44100), atol=2 / 32768)
    with pytest.raises(ValueError, match="audio_format"):
        generator.generate_library(tmp_path / "x", 1, audio_format="mp3")


def test_the_cli_writes_a_library(tmp_path, capsys):
    from synthetic.__main__ import main

    main(["--out", str(tmp_path), "--layout", "library", "--tracks-per-genre", "3", "--seconds", "0.5",
          "--tracks-per-album", "2", "--albums-per-artist", "1"])
    assert (tmp_path / "pop" / "Pop Artist 2" / "Album 1" / "01 Intro.wav").exists()
    main(["--out", str(tmp_path), "--layout", "library", "--tracks-per-genre", "3", "--seconds", "0.5",
          "--tracks-per-album", "2", "--albums-per-artist", "1"])
    assert "nothing to do" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--layout", "library", "--tracks-per-album", "0"])
