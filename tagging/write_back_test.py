"""The genre written into each file's own tags: every container, read back by mutagen and by PyAV (FFmpeg),
the audio packets unchanged, dry run, a writer killed mid-write, undo, and files that cannot be written."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import mutagen
import numpy as np
import pytest

from tagging import tag_fields, undo, write_back
from tests.testkit.library_files import VARIANTS, every_format

RATE = 22050
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    """Every variant, encoded once; tests work on copies."""
    t = np.arange(RATE) / RATE
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * np.linspace(0.2, 1.0, RATE)).astype(np.float32)
    return every_format(tmp_path_factory.mktemp("pristine"), samples, RATE)


@pytest.fixture
def library(pristine, tmp_path) -> dict[str, Path]:
    folder = tmp_path / "music"
    folder.mkdir()
    return {v: Path(shutil.copy2(p, folder / p.name)) for v, p in pristine.items()}


def pyav_tags(path: Path) -> dict[str, str]:
    """The container's and the audio stream's metadata as FFmpeg reads them, keys lower-cased."""
    with av.open(str(path)) as container:
        found = {**container.metadata, **container.streams.audio[0].metadata}
    return {k.lower(): v for k, v in found.items()}


def mutagen_fields(path: Path, genre_field: bool = False) -> dict[str, str | None]:
    audio = mutagen.File(str(path))
    kind = tag_fields.kind_of(audio)
    return tag_fields.read(audio, list(tag_fields.wanted(kind, "", 0.0, genre_field)))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_container_gets_its_fields_read_back_by_two_readers_and_its_audio_packets_unchanged(
        library, tmp_path, variant):
    path = library[variant]
    packets = write_back.packet_digest(str(path))
    entry = write_back.write_file(str(path), "jazz", 0.81234, str(tmp_path / "out"))
    assert entry["status"] == write_back.WRITTEN
    assert list(mutagen_fields(path).values()) == ["jazz", "0.8123"]
    seen = pyav_tags(path)
    assert seen["genre_predicted"] == "jazz" and seen["genre_score"] == "0.8123"
    assert seen["genre"].lower() == "rock" and seen["artist"] == "The Testers"  # the file's own tags kept
    assert write_back.packet_digest(str(path)) == packets
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary copy left
    if variant.startswith("mp3_id3v2"):
        assert mutagen.File(str(path)).tags.version[:2] == (2, int(variant[-1]))  # its own version kept
    if variant == "mp3_id3v1":
        assert path.read_bytes()[-128:-125] == b"TAG"  # the ID3v1 tag is still there
        assert mutagen.File(str(path)).tags.version[:2] == (2, tag_fields.NEW_ID3_VERSION)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_genre_field_writes_the_standard_genre_field(library, tmp_path, variant):
    path = library[variant]
    write_back.write_file(str(path), "Jazz", 0.5, str(tmp_path / "out"), genre_field=True)
    assert list(mutagen_fields(path, genre_field=True).values()) == ["Jazz", "0.5000"]
    seen = pyav_tags(path)
    assert seen["genre"] == "Jazz" and seen["genre_score"] == "0.5000" and "genre_predicted" not in seen
    if variant == "mp3_id3v1":  # the ID3v1 tag follows: Jazz is number 8 of its list
        assert path.read_bytes()[-1] == 8


def rows_for(library: dict[str, Path], genre: str = "jazz") -> list[dict]:
    return [{"path": p.name, "genre": genre, "top3": [{"genre": genre, "score": 0.75}]} for p in library.values()]


def path_in(folder: Path):
    return lambda rel: str(folder / rel)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_a_dry_run_plans_every_file_and_touches_none(library, tmp_path):
    folder = next(iter(library.values())).parent
    before = snapshot(folder)
    result = write_back.apply(rows_for(library), path_in(folder), str(tmp_path / "out"), log=lambda m: None)
    assert snapshot(folder) == before
    assert result["dry_run"] and result["counts"][write_back.PLANNED] == len(library)
    plan = [json.loads(x) for x in (tmp_path / "out" / write_back.PLAN_FILE).read_text().splitlines()]
    mp3 = next(e for e in plan if e["path"].endswith("mp3_id3v24.mp3"))
    assert mp3["fields"] == {"TXXX:GENRE_PREDICTED": "jazz", "TXXX:GENRE_SCORE": "0.7500"}
    assert mp3["current"] == {"TXXX:GENRE_PREDICTED": None, "TXXX:GENRE_SCORE": None}
    assert not (tmp_path / "out" / undo.UNDO_LOG).exists() and not (tmp_path / "out" / undo.UNDO_DIR).exists()


def test_undo_restores_every_file_byte_for_byte_through_two_runs(library, tmp_path):
    folder = next(iter(library.values())).parent
    original = snapshot(folder)
    os.chmod(library["flac"], 0o640)
    modes = {p.name: p.stat().st_mode for p in folder.iterdir()}
    out = tmp_path / "out"
    first = write_back.apply(rows_for(library), path_in(folder), str(out), write=True, log=lambda m: None)
    assert first["counts"][write_back.WRITTEN] == len(library)
    assert all(original[p.name][0] != p.read_bytes() for p in folder.iterdir())
    assert {p.name: p.stat().st_mode for p in folder.iterdir()} == modes  # each file's mode kept
    again = write_back.apply(rows_for(library), path_in(folder), str(out), write=True, log=lambda m: None)
    assert again["counts"][write_back.UNCHANGED] == len(library)  # the same answer is not written twice
    write_back.apply(rows_for(library, "blues"), path_in(folder), str(out), write=True, log=lambda m: None)
    report = undo.restore(str(out / undo.UNDO_LOG), log=lambda m: None)
    assert len(report["restored"]) == 2 * len(library) and not report["skipped"]
    assert snapshot(folder) == original  # bytes and modification times
    assert undo.restore(str(out / undo.UNDO_LOG), log=lambda m: None)["already_original"]


def test_undo_leaves_a_file_changed_since_it_was_tagged(library, tmp_path):
    path, out = library["wav"], tmp_path / "out"
    write_back.write_file(str(path), "jazz", 0.5, str(out))
    path.write_bytes(path.read_bytes() + b"\0")  # someone's later edit
    report = undo.restore(str(out / undo.UNDO_LOG), log=lambda m: None)
    assert report["skipped"][0]["path"] == str(path) and "changed since" in report["skipped"][0]["detail"]


def test_files_that_cannot_be_written_get_a_record_and_the_others_are_written(library, tmp_path):
    folder = next(iter(library.values())).parent
    os.chmod(library["flac"], 0o444)
    (folder / "notes.au").write_bytes(b".snd" + b"\0" * 60)          # a container no tag is written in
    os.link(library["wav"], tmp_path / "elsewhere.wav")               # a second name the rename would split
    rows = rows_for(library) + [{"path": n, "genre": "jazz", "top3": [{"genre": "jazz", "score": 0.5}]}
                                for n in ("notes.au", "gone.ogg")]
    read_only = library["flac"].read_bytes()
    result = write_back.apply(rows, path_in(folder), str(tmp_path / "out"), write=True, log=lambda m: None)
    failures = {Path(f["path"]).name: f for f in
                map(json.loads, (tmp_path / "out" / write_back.FAILURES_FILE).read_text().splitlines())}
    assert {n: f["reason"] for n, f in failures.items()} == {
        "flac.flac": "read_only", "notes.au": "unsupported_container", "gone.ogg": "missing", "wav.wav": "hard_linked"}
    assert all(f["fix"] for f in failures.values())
    assert library["flac"].read_bytes() == read_only
    assert result["counts"][write_back.WRITTEN] == len(library) - 2
    assert mutagen_fields(library["opus"])[tag_fields.GENRE_NAME] == "jazz"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from tagging import write_back
target, real_replace = os.path.abspath({path!r}), os.replace
def replace(src, dst, *args, **kwargs):  # the fault: die between the tagged copy and its rename
    if os.path.abspath(dst) == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
write_back.write_file(target, "jazz", 0.9, {out!r})
"""


@pytest.mark.parametrize("variant", ["mp3_id3v23", "aac"])
def test_a_writer_killed_between_copy_and_rename_leaves_the_original_and_the_next_run_cleans_up(
        library, tmp_path, variant):
    path, out = library[variant], tmp_path / "out"
    original = path.read_bytes()
    script = tmp_path / "killed_writer.py"
    script.write_text(textwrap.dedent(KILLED_WRITER).format(root=str(ROOT), path=str(path), out=str(out)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert path.read_bytes() == original
    stray = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}{undo.TEMP_MARK}")]
    assert len(stray) == 1  # the tagged copy the kill left: hidden, so never listed as audio
    assert undo.restore(str(out / undo.UNDO_LOG), log=lambda m: None)["already_original"]  # logged, not replaced
    entry = write_back.write_file(str(path), "jazz", 0.9, str(out))
    assert entry["status"] == write_back.WRITTEN and not stray[0].exists()
    assert list(mutagen_fields(path).values()) == ["jazz", "0.9000"]


def test_a_file_name_that_is_not_utf8_is_written_planned_and_listed(library, tmp_path):
    from tagging import playlists

    folder = next(iter(library.values())).parent
    odd = folder / os.fsdecode(b"caf\xe9 \xff.wav")  # a Latin-1 name from an old disk
    os.rename(library["wav"], odd)
    rows = [{"path": odd.name, "genre": "jazz", "top3": [{"genre": "jazz", "score": 0.5}]},
            {"path": "line\nbreak.flac", "genre": "jazz", "top3": [{"genre": "jazz", "score": 0.5}]}]
    result = write_back.apply(rows[:1], path_in(folder), str(tmp_path / "out"), write=True, log=lambda m: None)
    assert result["counts"][write_back.WRITTEN] == 1 and mutagen_fields(odd)[f"TXXX:{tag_fields.GENRE_NAME}"] == "jazz"
    assert json.loads((tmp_path / "out" / write_back.PLAN_FILE).read_text())["path"] == str(odd)
    listed = playlists.write(rows, path_in(folder), str(tmp_path / "out"))["jazz"]
    assert open(listed, "rb").read().splitlines()[-1] == os.fsencode(str(odd))  # the name's own bytes
    assert len(open(listed, "rb").read().splitlines()) == 4  # the name with a line break is left out


def test_a_copy_that_fails_its_check_or_its_write_is_removed_and_the_original_kept(library, tmp_path, monkeypatch):
    path, out = library["mp3_id3v24"], tmp_path / "out"
    original = path.read_bytes()
    digests = iter(["before", "after"])  # the audio packets as if saving had changed them
    monkeypatch.setattr(write_back, "packet_digest", lambda p: next(digests))
    with pytest.raises(write_back.Refused, match="audio packets changed") as refused:
        write_back.write_file(str(path), "jazz", 0.5, str(out))
    assert refused.value.reason == "check_failed"
    monkeypatch.undo()

    def full_disk(audio, kind):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tag_fields, "save", full_disk)
    result = write_back.apply(rows_for({"x": path}), path_in(path.parent), str(out), write=True, log=lambda m: None)
    assert result["counts"][write_back.FAILED] == 1
    failure = json.loads((out / write_back.FAILURES_FILE).read_text())
    assert failure["reason"] == "write_error" and "No space left" in failure["detail"]
    assert path.read_bytes() == original and not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert not (out / undo.UNDO_LOG).exists()
