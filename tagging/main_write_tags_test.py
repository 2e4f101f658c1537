"""``python -m tagging SRC --out OUT --write-tags`` end to end on testkit's stand-in model, then ``--undo``."""
from __future__ import annotations

import json

import pytest
import soundfile as sf

from tagging import tag_fields, undo, write_back
from tagging.__main__ import main

RATE = 22050


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from testkit.serving import build_stand_in_model
    return build_stand_in_model(tmp_path_factory.mktemp("serving") / "genre", version=1)


def test_the_command_plans_then_writes_then_undoes(model_dir, tmp_path):
    from testkit.serving import stand_in_clip

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
        audio = tag_fields.open_file(str(music / name))
        kind = tag_fields.kind_of(audio)
        assert tag_fields.read(audio, kind, [tag_fields.STANDARD_GENRE[kind]]) == {
            tag_fields.STANDARD_GENRE[kind]: row["genre"]}
        assert str(music / name) in (out / "playlists" / f"{row['genre']}.m3u8").read_text().splitlines()
    assert json.loads((out / "summary.json").read_text())["write_tags"]["genre_field"] is True

    report = main(["--undo", str(out / undo.UNDO_LOG)])
    assert len(report["restored"]) == 2
    assert {p.name: p.read_bytes() for p in music.iterdir()} == original
