"""Genre folders outside the label set: refused before the run with fixes that work as written."""
from __future__ import annotations

import re
import shutil

import pytest

import local_runner
from local_run.run import checked_config
from audio.discovery import discover
from components.audio_example_gen import ingest
from components.audio_example_gen.plan import plan_tasks
from config.errors import UserError
from config.settings import GENRES, SplitConfig


@pytest.fixture
def root(tmp_path):
    """GTZAN's ten folders (three clips each), a visible unknown one (polka/) and a hidden one (.ska/)."""
    data = tmp_path / "data"
    for genre in (*GENRES, "polka", ".ska"):
        (data / genre).mkdir(parents=True)
        for number in range(3 if genre != "pop" else 2):
            (data / genre / f"{genre.strip('.')}.{number:05d}.wav").write_bytes(b"RIFF")
    (data / "pop" / "live").mkdir()
    (data / "pop" / "live" / "pop.00001.wav").write_bytes(b"RIFF")
    return data


def checked(root, *flags):
    return checked_config(local_runner.parse_args(
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
    assert [(t.status, t.reason) for t in hidden] == [(ingest.EXCLUDED, "hidden")] * 3
    assert any(t.rel_path == "pop/live/pop.00001.wav" and t.status == ingest.PENDING for t in tasks)


def album_library(data, albums: dict[str, list[str]], songs: int = 3) -> None:
    """``<genre>/<artist>/<album>/0N Song.wav`` for each "genre/artist/album" given, ``songs`` songs each."""
    for genre, entries in albums.items():
        for entry in entries:
            for song in range(1, songs + 1):
                (data / genre / entry).mkdir(parents=True, exist_ok=True)
                (data / genre / entry / f"0{song} Song.wav").write_bytes(b"RIFF")


ONE_ALBUM_OF_JAZZ = {"rock": ["Band/First", "Band/Second", "Band/Third"], "blues": ["Duo/A", "Duo/B", "Duo/C"],
                     "jazz": ["Trio/Live"]}


def test_a_genre_of_one_album_is_refused_before_the_run_with_the_fixes_that_work(tmp_path):
    data = tmp_path / "library"
    album_library(data, ONE_ALBUM_OF_JAZZ)
    with pytest.raises(UserError) as refused:
        checked(data, "--genres", "rock,jazz,blues")
    message = refused.value.paragraph()
    assert ("cannot give every genre a track in train, eval and test: genre jazz (3 tracks in 1 album folder) has "
            "too few album folders to reach all 3 splits") in message
    assert "--group-by album" in message and str(data) in message and "rock" not in message.split("Fix:")[0]
    assert "add tracks to jazz from album folders of their own" in refused.value.fix
    assert re.findall(r"`([^`]+)`", refused.value.fix) == ["--group-by track", "--genres blues,rock"]
    assert "(under genre folders, with jazz/ moved out of the data root)" in refused.value.fix
    assert checked(data, "--genres", "rock,jazz,blues", "--group-by", "track").split.group_by == "track"
    shutil.move(data / "jazz", tmp_path / "jazz")  # each fix works as written
    assert checked(data, "--genres", "blues,rock").genres == ("blues", "rock")
    shutil.move(tmp_path / "jazz", data / "jazz")
    with pytest.raises(UserError, match=r"genres blues \(9 tracks in 1 artist folder\), jazz \(3 tracks in 1 artist "
                                        r"folder\) and rock \(9 .*\) have too few artist folders"):
        checked(data, "--genres", "rock,jazz,blues", "--group-by", "artist")  # rock: three albums, one artist
    assert checked(data, "--genres", "rock,jazz,blues", "--split", "fault-filtered",  # lists: no group rule
                   "--split-dir", str(lists(tmp_path))).genres == ("rock", "jazz", "blues")


def test_preflight_and_ingestion_refuse_the_same_genre(tmp_path):
    """Runs that skip preflight (Kubeflow) get the same refusal from the plan, before decoding."""
    data = tmp_path / "library"
    album_library(data, ONE_ALBUM_OF_JAZZ)
    with pytest.raises(UserError) as before_the_run:
        checked(data, "--genres", "rock,jazz,blues")
    with pytest.raises(UserError) as in_ingestion:
        plan_tasks(discover(str(data), "*/*"), SplitConfig(), ("rock", "jazz", "blues"))
    assert (before_the_run.value.problem, before_the_run.value.fix) == (in_ingestion.value.problem,
                                                                        in_ingestion.value.fix)


def lists(tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir(exist_ok=True)
    for name in ("train", "valid", "test"):
        (folder / f"{name}_filtered.txt").write_text("")
    return folder


def tagged_library(tmp_path, genres=("Rock", "Hip-Hop")):
    """An Artist/Album library without genre folders, two albums a genre, labelled by its FLAC tags."""
    import numpy as np

    from tests.testkit.library_files import encode, tag

    data = tmp_path / "library"
    for g, genre in enumerate(genres):
        for album in ("One", "Two", "Three"):
            samples = (0.2 * np.sin(np.arange(2205) * 0.01 * (g + 1))).astype(np.float32)
            tag(encode(data / f"Artist {g}" / album / "01 Song", samples, 22050, "flac"), genre=genre,
                artist=f"Artist {g}", album=album)
    encode(data / "Artist 9" / "loose", np.zeros(2205, np.float32), 22050, "flac")  # no genre tag
    return data


def test_labels_from_tags_count_the_files_genres_not_folders(tmp_path):
    data = tagged_library(tmp_path)
    with pytest.raises(UserError, match="genre folders differ"):  # by folders, the artists would be genres
        checked(data)
    config = checked(data, "--labels", "tags", "--genres-from-data")
    assert config.genres == ("hiphop", "rock") and config.labels.source == "tags"
    assert checked(data, "--labels", "tags", "--genres", "rock,hip-hop").genres == ("rock", "hip-hop")


def test_labels_from_tags_refuse_a_label_set_the_tags_do_not_name_with_the_fix(tmp_path):
    data = tagged_library(tmp_path)
    with pytest.raises(UserError) as refused:
        checked(data, "--labels", "tags")  # GTZAN's ten: eight have no tagged track
    message = refused.value.paragraph()
    assert "name no track of blues" in message and "no_genre_tag 1" in message
    assert "`--genres-from-data` (label set: hiphop, rock)" in message
    with pytest.raises(UserError, match="fewer than two|1 genre"):
        checked(tagged_library(tmp_path / "one", ("Rock",)), "--labels", "tags", "--genres-from-data")


def test_a_manifest_labels_the_files_and_its_errors_stop_the_run_before_it_starts(tmp_path):
    data = tagged_library(tmp_path)
    rows = [f"Artist {g}/{album}/01 Song.flac,{genre},Artist {g},{album}" for g, genre in enumerate(("Jazz", "Pop"))
            for album in ("One", "Two", "Three")]
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,genre,artist,album\n" + "\n".join(rows) + "\n")
    config = checked(data, "--labels", str(manifest), "--genres-from-data")
    assert config.genres == ("jazz", "pop") and config.labels.manifest_sha256
    manifest.write_text("path,style\nx.flac,rock\n")
    with pytest.raises(UserError) as refused:
        checked(data, "--labels", str(manifest), "--genres-from-data")
    assert "no column genre" in refused.value.paragraph() and "line 1" in refused.value.paragraph()
