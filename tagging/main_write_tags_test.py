"""``python -m tagging SRC --out OUT --write-tags`` end to end on testkit's stand-in model, then ``--undo``."""
from __future__ import annotations

import json

import mutagen
import pytest
import soundfile as sf

from tagging import tag_fields, undo, write_back
from tagging.__main__ import main

RATE = 22050


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from tests.testkit.serving import build_stand_in_model
    return build_stand_in_model(tmp_path_factory.mktemp("serving") / "genre", version=1)


def test_the_command_plans_then_writes_then_undoes(model_dir, tmp_path):
    from tests.testkit.serving import stand_in_clip

    music = tmp_path / "music"
    music.mkdir()
    for genre, ext in (("blues", "wav"), ("metal", "flac")):
        sf.write(music / f"{genre}.{ext}", stand_in_clip(genre, seconds=4.0, sample_rate=RATE), RATE, subtype="PCM_16")
    original = {p.name: p.read_bytes() for p in music.iterdir()}
    common = [str(music), "--model-dir", model_dir, "--segment-seconds", "3"]

    main([*common, "--out", str(tmp_path / "plan")])  # the default: a dry run
    assert {p.name: p.read_bytes() for p in music.iterdir()} == original
    assert len((tmp_path / "plan" / write_back.PLAN_FILE).read_text().splitlines()) == 2

    out = tmp_path / "out"
    summary = main([*common, "--out", str(out), "--write-tags", "--genre-field"])
    assert summary["write_tags"]["counts"][write_back.WRITTEN] == 2
    rows = {r["path"]: r for r in map(json.loads, (out / "tags.jsonl").read_text().splitlines())}
    for name, row in rows.items():
        audio = mutagen.File(str(music / name))
        kind = tag_fields.kind_of(audio)
        assert tag_fields.read(audio, [tag_fields.STANDARD_GENRE[kind]]) == {
            tag_fields.STANDARD_GENRE[kind]: row["genre"]}
        assert str(music / name) in (out / "playlists" / f"{row['genre']}.m3u8").read_text().splitlines()
    assert json.loads((out / "summary.json").read_text())["write_tags"]["genre_field"] is True

    report = main(["--undo", str(out / undo.UNDO_LOG)])
    assert len(report["restored"]) == 2
    assert {p.name: p.read_bytes() for p in music.iterdir()} == original


def test_the_console_shows_the_jobs_own_lines_and_the_log_file_keeps_everything(model_dir, tmp_path):
    """``python -m tagging`` in a process of its own, as a user runs it: a job, then one that cannot find its model."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from local_run.console import OWN_LINE
    from tests.testkit.serving import stand_in_clip

    root = Path(__file__).resolve().parent.parent
    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "blues.wav", stand_in_clip("blues", seconds=4.0, sample_rate=RATE), RATE, subtype="PCM_16")

    def tag(out: Path, model: str) -> tuple[int, list[str], str]:
        done = subprocess.run([sys.executable, "-m", "tagging", str(music), "--out", str(out), "--model-dir", model,
                               "--segment-seconds", "3"], cwd=root, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(root)})
        console = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        [log] = (out / "logs").glob("tag-*.log")
        return done.returncode, console, log.read_text(errors="replace")

    code, console, log = tag(tmp_path / "out", model_dir)
    assert code == 0, console
    assert all(OWN_LINE.match(line.encode()) for line in console), console
    assert re.fullmatch(r"\[tag\] log file: .*tag-[0-9-]+\.log", console[0]) and "[tag] 1 tagged" in "\n".join(console)
    assert all(line in log for line in console)

    code, console, log = tag(tmp_path / "no_model", str(tmp_path / "nowhere"))
    assert code == 2
    assert console[1].startswith("tagging failed: ") and "nowhere" in console[1], console
    assert any(line.startswith("Fix: ") for line in console[2:]), console  # the paragraph names the fix
    assert "Traceback" in log and "Traceback" not in "\n".join(console)
