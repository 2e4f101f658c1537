"""``python -m tagging ROOT --out OUT`` again into the same OUT after the library changed: only new and changed
files are decoded, moved and re-tagged ones keep their rows, a killed run leaves the earlier results whole, and a
second run at once is refused. The model is testkit's stand-in SavedModel; the tagger runs in processes of its own."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mutagen
import pytest

from local_run.lock import output_dir_lock
from tagging import outputs, pipeline, undo, write_back
from tagging.__main__ import main
from tests.testkit.library_files import album_track
from tests.testkit.serving import build_stand_in_model, stand_in_clip

RATE = 22050
ROOT = Path(__file__).resolve().parent.parent
# (artist, album, number, title, format, genre the clip is made for)
FIRST = [("Ann", "One", 1, "Intro", "flac", "blues"), ("Ann", "One", 2, "Song", "mp3", "metal"),
         ("Ann", "One", 3, "Other", "aac", "rock"), ("Bo", "Two", 1, "First", "opus", "country"),
         ("Bo", "Two", 2, "Second", "wav", "reggae"), ("Bo", "Two", 3, "Third", "flac", "hiphop")]
ADDED = [("Cy", "Three", 1, "New", "mp3", "jazz"), ("Cy", "Three", 2, "Newer", "flac", "pop"),
         ("Ann", "One", 4, "Bonus", "wav", "disco")]
RESULTS = ("tags.csv", "tags.jsonl", "tags.parquet", "quarantine.jsonl", "summary.json", "write_plan.jsonl",
           "write_failures.jsonl")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return build_stand_in_model(tmp_path_factory.mktemp("serving") / "genre", version=1)


def track(root: Path, spec: tuple) -> Path:
    artist, album, number, title, fmt, genre = spec
    return album_track(root, artist, album, number, title, stand_in_clip(genre, seconds=4.0, sample_rate=RATE), RATE,
                       fmt, genre=genre.title(), id3_version=3)


def tag(music: Path, out: Path, model_dir: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tagging", str(music), "--out", str(out), "--model-dir", model_dir,
                           "--segment-seconds", "3", *extra], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def results(out: Path) -> dict[str, bytes]:
    found = {name: (out / name).read_bytes() for name in RESULTS}
    return found | {p.name: p.read_bytes() for p in (out / "playlists").iterdir()}


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_rerun_tags_only_what_changed_and_a_killed_run_keeps_the_earlier_results(model_dir, tmp_path):
    music, out = tmp_path / "music", tmp_path / "out"
    paths = [track(music, spec) for spec in FIRST]
    original = {p: p.read_bytes() for p in paths}
    first = tag(music, out, model_dir, "--write-tags")
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["changes"] == {"new": 6, "changed": 0, "moved": 0, "removed": 0, "unchanged": 0,
                                  "quarantined": 0, "inferred": 6}
    assert summary["write_tags"]["counts"][write_back.WRITTEN] == 6

    added = [track(music, spec) for spec in ADDED]
    original |= {p: p.read_bytes() for p in added}
    changed = track(music, ("Bo", "Two", 3, "Third", "flac", "classical"))  # other audio at the same path
    original[changed] = changed.read_bytes()
    moved = music / "Bo" / "Two" / "09 Song.mp3"  # to another album's folder
    os.rename(paths[1], moved)
    paths[3].unlink()  # "Bo/Two/01 First.opus"
    retagged = mutagen.File(str(paths[2]))
    retagged["\xa9nam"] = ["Other (2024 remaster)"]
    retagged.save()
    before = results(out)

    killed = tag(music, out, model_dir, "--write-tags", env={pipeline.KILL_BEFORE_COMMIT: "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert results(out) == before  # the first run's results, whole

    second = tag(music, out, model_dir, "--write-tags")
    assert second.returncode == 0, second.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["changes"] == {"new": 3, "changed": 1, "moved": 1, "removed": 1, "unchanged": 3,
                                  "quarantined": 0, "inferred": 4}
    last = second.stdout.strip().splitlines()[-1]  # the console (local_run.console: the terminal is fd 1)
    assert "3 new, 1 changed, 1 moved, 1 removed, 3 unchanged" in last and "0 quarantined" in last, last
    # The killed run wrote its 4 files' tags (its undo lines kept); this one finds them written: none rewritten.
    assert summary["write_tags"]["counts"] == {"written": 0, "unchanged": 8, "planned": 0, "failed": 0}
    assert len((out / undo.UNDO_LOG).read_text().splitlines()) == 6 + 4
    rows = {r["path"]: r for r in csv_rows(out / "tags.csv")}
    assert sorted(rows) == sorted(str(p.relative_to(music)) for p in music.rglob("*.*"))
    assert all((out / "playlists" / f"{r['genre']}.m3u8").read_text().count(str(music / path)) == 1
               for path, r in rows.items())
    assert not (out / outputs.STAGING).exists()

    shutil.copy(out / "tags.csv", tmp_path / "incremental.csv")
    retag = main([str(music), "--out", str(out), "--model-dir", model_dir, "--segment-seconds", "3", "--retag"])
    assert retag["changes"]["inferred"] == 8 and retag["retag"] == "--retag"
    again, incremental = csv_rows(out / "tags.csv"), csv_rows(tmp_path / "incremental.csv")
    assert [r["path"] for r in again] == [r["path"] for r in incremental]
    for row, ref in zip(again, incremental):
        for column, value in ref.items():
            if column.endswith("_score"):
                assert float(row[column]) == pytest.approx(float(value), abs=1e-6), row["path"]
            else:
                assert row[column] == value, (row["path"], column)

    report = main(["--undo", str(out / undo.UNDO_LOG)])  # through the first run's and the killed run's writes
    untouched = [p for p in original if p.exists() and p != paths[2]]
    assert {p: p.read_bytes() for p in untouched} == {p: original[p] for p in untouched}
    # the killed run's 4 files and the first run's 2 no one touched since (moved, deleted, re-tagged, changed: not)
    assert len(report["restored"]) == 4 + 2


def test_a_second_run_into_the_same_out_is_refused_naming_the_first(model_dir, tmp_path, capsys):
    music, out = tmp_path / "music", tmp_path / "out"
    track(music, FIRST[0])
    with output_dir_lock(str(out)), pytest.raises(SystemExit) as refused:
        main([str(music), "--out", str(out), "--model-dir", model_dir, "--segment-seconds", "3"])
    assert refused.value.code == 2
    paragraph = capsys.readouterr().err.strip()
    assert f"PID {os.getpid()}" in paragraph and "--out" in paragraph.splitlines()[-1], paragraph
    assert not (out / "tags.csv").exists()
