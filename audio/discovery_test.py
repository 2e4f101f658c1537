"""Finding the files of a data root: GTZAN's three layouts, a missing or empty root, track ids and list keys."""
from __future__ import annotations

import pytest

from audio.discovery import discover, input_pattern
from tests.testkit.audio_files import touch


@pytest.mark.parametrize("parent", ["", "genres_original/", "genres/"])
def test_the_three_gtzan_layouts(tmp_path, parent):
    touch(tmp_path, f"{parent}blues/blues.00000.wav", f"{parent}jazz/jazz.00001.FLAC", f"{parent}jazz/jazz.00002.au",
          f"{parent}rock/rock.00003.mp3", f"{parent}rock/rock.00004.ogg", f"{parent}rock/readme.txt",
          "features_30_sec.csv")
    pattern = input_pattern(str(tmp_path))
    assert pattern == f"{parent}*/*"
    found = discover(str(tmp_path), pattern)
    assert [f.rel_path for f in found.files] == [
        f"{parent}blues/blues.00000.wav", f"{parent}jazz/jazz.00001.FLAC", f"{parent}jazz/jazz.00002.au",
        f"{parent}rock/rock.00003.mp3", f"{parent}rock/rock.00004.ogg"]
    assert [(f.genre, f.track_id) for f in found.files][:2] == [("blues", "blues/blues.00000"),
                                                                 ("jazz", "jazz/jazz.00001")]
    assert found.other_files == ["features_30_sec.csv", f"{parent}rock/readme.txt"]


def test_missing_root_and_empty_root_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*<root>/<genre>/<name>.wav"):
        discover(str(tmp_path / "nowhere"), "*/*")
    touch(tmp_path, "blues/notes.txt")
    with pytest.raises(FileNotFoundError, match=r"No audio files under .* in genre folders"):
        discover(str(tmp_path), "*/*")


def test_gtzan_tracks_are_named_genre_slash_stem_as_the_split_lists_name_them(tmp_path):
    touch(tmp_path, "genres_original/blues/blues.00029.wav", "genres_original/pop/pop.00001.flac")
    found = discover(str(tmp_path), "genres_original/*/*").files
    assert [(f.track_id, f.list_key, f.layout_path) for f in found] == [
        ("blues/blues.00029", "blues/blues.00029", "blues.00029"), ("pop/pop.00001", "pop/pop.00001", "pop.00001")]


def test_the_same_path_under_two_genre_folders_is_two_tracks_grouped_by_the_path_under_the_genre(tmp_path):
    touch(tmp_path, "rock/Unknown Artist/Unknown Album/01 Track 01.wav",
          "jazz/Unknown Artist/Unknown Album/01 Track 01.wav")
    found = discover(str(tmp_path), "*/*").files
    assert [(f.genre, f.track_id, f.layout_path) for f in found] == [
        ("jazz", "jazz/Unknown Artist/Unknown Album/01 Track 01", "Unknown Artist/Unknown Album/01 Track 01"),
        ("rock", "rock/Unknown Artist/Unknown Album/01 Track 01", "Unknown Artist/Unknown Album/01 Track 01")]
