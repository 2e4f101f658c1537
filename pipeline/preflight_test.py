"""Genre folders outside the label set: refused before the run with fixes that work as written."""
from __future__ import annotations

import re
import shutil

import pytest

import local_runner
from components.audio_example_gen import ingest
from components.audio_example_gen.discovery import discover
from components.audio_example_gen.plan import plan_tasks
from pipeline.config import GENRES, SplitConfig
from pipeline.errors import UserError


@pytest.fixture
def root(tmp_path):
    """GTZAN's ten folders, a visible unknown one (polka/) and a hidden one (.ska/)."""
    data = tmp_path / "data"
    for genre in (*GENRES, "polka", ".ska"):
        (data / genre).mkdir(parents=True)
        (data / genre / f"{genre.strip('.')}.00000.wav").write_bytes(b"RIFF")
    (data / "pop" / "live").mkdir()
    (data / "pop" / "live" / "pop.00001.wav").write_bytes(b"RIFF")
    return data


def checked(root, *flags):
    return local_runner._checked_config(local_runner.parse_args(
        ["--data-root", str(root), "--output-dir", str(root.parent / "out"), *flags]))


def test_each_suggested_fix_for_an_unknown_genre_folder_works_as_written(root):
    with pytest.raises(UserError) as refused:
        checked(root)
    message = refused.value.paragraph()
    assert "not in the label set: polka" in message and "ska" not in message  # hidden: not a genre folder
    suggested = re.findall(r"`([^`]+)`", refused.value.fix)
    assert suggested == ["--genres-from-data", f"--genres {','.join(sorted((*GENRES, 'polka')))}"]
    for flags in suggested:
        config = checked(root, *flags.split())
        assert set(config.genres) == {*GENRES, "polka"}, flags
    assert "move polka/ out of the data root" in refused.value.fix
    shutil.move(root / "polka", root.parent / "polka")
    assert checked(root).genres == GENRES


def test_preflight_and_ingestion_see_the_same_genre_folders(root):
    """Hidden folders are read by neither; nested files count for their top folder in both."""
    config = checked(root, "--genres-from-data")
    tasks = plan_tasks(discover(str(root), "*/*"), SplitConfig(protocol="hash"), config.genres)
    read = {t.genre for t in tasks if t.status == ingest.PENDING}
    assert read == set(config.genres)
    hidden = [t for t in tasks if t.rel_path.startswith(".ska/")]
    assert [(t.status, t.reason) for t in hidden] == [(ingest.EXCLUDED, "hidden")]
    assert any(t.rel_path == "pop/live/pop.00001.wav" and t.status == ingest.PENDING for t in tasks)
