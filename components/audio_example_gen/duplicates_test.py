"""Duplicate audio by content (duplicates.py), applied by the plan before the split."""
from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from audio.discovery import discover
from components.audio_example_gen import duplicates, ingest
from components.audio_example_gen.plan import plan_tasks
from config.settings import PipelineConfig, SplitConfig
from conftest import SHARED_GTZAN
from tests.testkit.audio_files import tone

GENRES = PipelineConfig().genres
RATE = 22050


def music(seed: int, seconds: float = 3.0) -> np.ndarray:
    """int16 samples: libsndfile's float-to-int conversion differs between its WAV and FLAC writers."""
    return np.random.default_rng(seed).integers(-10000, 10000, int(seconds * RATE), dtype=np.int16)


@pytest.fixture
def root(tmp_path):
    for genre in ("rock", "metal", "jazz"):
        (tmp_path / genre).mkdir()
    clip = music(1)
    sf.write(tmp_path / "metal" / "metal.00034.wav", clip, RATE, subtype="PCM_16")
    sf.write(tmp_path / "metal" / "metal.00094.flac", clip, RATE, subtype="PCM_16")   # a FLAC copy
    shutil.copyfile(tmp_path / "metal" / "metal.00034.wav", tmp_path / "rock" / "rock.00016.wav")  # byte copy
    (tmp_path / "jazz" / "jazz.00001.wav").symlink_to(tmp_path / "metal" / "metal.00034.wav")
    os.link(tmp_path / "metal" / "metal.00034.wav", tmp_path / "jazz" / "jazz.00002.wav")
    # Same first second, different after it: a different track, decoded whole to tell.
    later = clip.copy()
    later[2 * RATE:] = music(2, 1.0)
    sf.write(tmp_path / "rock" / "rock.00017.wav", later, RATE, subtype="PCM_16")
    sf.write(tmp_path / "rock" / "rock.00018.wav", music(3), RATE, subtype="PCM_16")
    return tmp_path


@pytest.mark.parametrize("protocol", ["hash", "stratified"])
def test_identical_audio_under_other_names_links_and_formats_is_one_track(root, protocol):
    tasks = {t.rel_path: t for t in plan_tasks(discover(str(root), "*/*"),
                                                  SplitConfig(protocol=protocol, ratios=(1.0, 0.0, 0.0)), GENRES)}
    # Every track to train: after the copies go, jazz keeps one track, which a held-out split would refuse.
    # Sorted order: jazz/jazz.00001.wav (the link) comes first and is kept; every other copy names it.
    kept = "jazz/jazz.00001.wav"
    assert tasks[kept].status == ingest.PENDING
    for copy in ("jazz/jazz.00002.wav", "metal/metal.00034.wav", "metal/metal.00094.flac", "rock/rock.00016.wav"):
        assert (tasks[copy].status, tasks[copy].reason) == (ingest.QUARANTINED, "duplicate_audio"), copy
        assert kept in tasks[copy].detail
    assert tasks["rock/rock.00017.wav"].status == tasks["rock/rock.00018.wav"].status == ingest.PENDING


def test_only_files_sharing_a_head_are_decoded_whole(root, monkeypatch):
    calls = []
    real = duplicates._read_pcm
    monkeypatch.setattr(duplicates, "_read_pcm", lambda p, head, cap: calls.append((os.path.basename(p), head))
                        or real(p, head, cap))
    files = [(str(p), str(p.relative_to(root))) for p in sorted(root.rglob("*.*"))]
    found = duplicates.find(files, workers=1)
    assert set(found) == {"jazz/jazz.00002.wav", "metal/metal.00034.wav", "metal/metal.00094.flac",
                          "rock/rock.00016.wav"}
    whole = {name for name, head in calls if not head}
    # Links are recognised by inode (never read); rock.00018 has its own head (read 1 s only).
    assert whole == {"jazz.00001.wav", "metal.00094.flac", "rock.00016.wav", "rock.00017.wav"}
    assert {name for name, _ in calls} == whole | {"rock.00018.wav"}


def test_unreadable_files_are_left_to_the_decoder(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"not audio")
    (tmp_path / "b.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "c.wav", tone(2.0), RATE)
    assert duplicates.find([(str(tmp_path / n), n) for n in ("a.wav", "b.wav", "c.wav")]) == {}


REAL = SHARED_GTZAN / "audio"


@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_dir(), reason=f"needs the real GTZAN clips in {REAL} (not in this checkout)")
def test_real_clips_have_no_false_duplicates_and_a_wav_copy_of_a_flac_clip_is_found(tmp_path):
    clips = sorted(p for p in REAL.glob("*/*.*"))
    flac = next(p for p in clips if p.suffix == ".flac")
    ogg = next(p for p in clips if p.suffix == ".ogg")
    samples, rate = sf.read(flac, dtype="int16")
    copy = tmp_path / "copy.wav"
    sf.write(copy, samples, rate, subtype="PCM_16")
    ogg_copy = tmp_path / "copy.ogg"
    shutil.copyfile(ogg, ogg_copy)
    files = [(str(p), str(p.relative_to(REAL))) for p in clips] + [(str(copy), "zz/copy.wav"),
                                                                   (str(ogg_copy), "zz/copy.ogg")]
    started = time.process_time()
    found = duplicates.find(files, workers=1)
    cpu = time.process_time() - started
    assert found == {"zz/copy.wav": str(flac.relative_to(REAL)), "zz/copy.ogg": str(ogg.relative_to(REAL))}
    # The figure docs/hostile_input.md quotes (run with -s):
    print(f"duplicate check of {len(files)} files ({len(clips)} real clips, 2 copies): {cpu:.1f} s CPU")


def test_different_float_files_are_not_duplicates(tmp_path):
    """libsndfile does not scale float samples read as int: all of these would have read as zeros."""
    names = []
    for i, samples in enumerate((np.zeros(2 * RATE, np.float32), np.full(2 * RATE, 0.4, np.float32),
                                 (1e-4 * np.random.default_rng(1).standard_normal(2 * RATE)).astype(np.float32))):
        names.append(f"f{i}.wav")
        sf.write(tmp_path / names[-1], samples, RATE, subtype="FLOAT")
    assert duplicates.find([(str(tmp_path / n), n) for n in names]) == {}
