"""The grouping rules: folders, the files' own tags (written here with mutagen), and the refusal."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.oggvorbis import OggVorbis

from audio import groups
from config.settings import SplitConfig


@pytest.mark.parametrize("group_by, expected", [
    ("album", ["Artist/Album", "Artist/Album", "blues.00029", "Artist"]),  # CD1: a disc of the album above
    ("artist", ["Artist", "Artist", "blues.00029", "Artist"]),
    ("track", ["Artist/Album/01 Intro", "Artist/Album/CD1/01 Intro", "blues.00029", "Artist/01 Single"]),
    ("tag-album", ["Artist/Album", "Artist/Album", "blues.00029", "Artist"]),  # the folder rule, as fallback
    ("tag-artist", ["Artist", "Artist", "blues.00029", "Artist"]),
])
def test_folder_rules_at_any_depth_and_a_file_in_the_genre_folder_is_its_own_group(group_by, expected):
    ids = ["Artist/Album/01 Intro", "Artist/Album/CD1/01 Intro", "blues.00029", "Artist/01 Single"]
    assert [groups.folder_key(t, group_by) for t in ids] == expected


@pytest.mark.parametrize("folder, album", [
    ("Artist/Album/Disc 2", "Artist/Album"), ("Artist/Album/disk-3", "Artist/Album"), ("Artist/Album/cd10", "Artist/Album"),
    ("Artist/CD Collection", "Artist/CD Collection"), ("Artist/Discovery", "Artist/Discovery"), ("Artist/CD1", "Artist"),
    ("CD1", "CD1"),  # a disc folder straight under the genre has no album above it
])
def test_a_disc_folder_is_part_of_the_album_above_it(folder, album):
    assert groups.folder_key(f"{folder}/01 Song", "album") == album


def test_group_keys_hold_no_genre_so_an_artist_in_two_genre_folders_is_one_group():
    grouping = groups.group_keys([("/r/rock/A/X/1.wav", "A/X/1"), ("/r/jazz/A/Y/1.wav", "A/Y/1")], "artist")
    assert set(grouping.keys.values()) == {"A"} and grouping.fallbacks == 0


def tagged(path, fmt: str, **tags: str) -> str:
    sf.write(path, np.zeros(2205, np.float32), 22050, format=fmt, **({"subtype": "VORBIS"} if fmt == "OGG" else {}))
    audio = FLAC(path) if fmt == "FLAC" else OggVorbis(path)
    for name, value in tags.items():
        audio[name] = value
    audio.save()
    return str(path)


def test_tag_groupings_read_the_files_own_tags_and_fall_back_to_folders(tmp_path):
    (tmp_path / "Folder A" / "Disc").mkdir(parents=True)
    files = [
        (tagged(tmp_path / "Folder A" / "Disc" / "1.flac", "FLAC", artist="The Band", album="Live"), "Folder A/Disc/1"),
        (tagged(tmp_path / "Folder A" / "2.ogg", "OGG", albumartist="THE BAND ", artist="Guest", album="live"),
         "Folder A/2"),
        (tagged(tmp_path / "3.flac", "FLAC", artist="Other"), "Folder B/Album/3"),  # no album tag
        (tagged(tmp_path / "4.flac", "FLAC"), "Folder C/4"),                       # no tags at all
        (str(tmp_path / "missing.flac"), "Folder D/5"),                             # unreadable: no tags
    ]
    by_album = groups.group_keys(files, "tag-album")
    assert by_album.keys == {"Folder A/Disc/1": "the band/live", "Folder A/2": "the band/live",
                             "Folder B/Album/3": "Folder B/Album", "Folder C/4": "Folder C", "Folder D/5": "Folder D"}
    assert by_album.fallbacks == 3
    by_artist = groups.group_keys(files, "tag-artist")
    assert by_artist.keys == {"Folder A/Disc/1": "the band", "Folder A/2": "the band", "Folder B/Album/3": "other",
                              "Folder C/4": "Folder C", "Folder D/5": "Folder D"}
    assert by_artist.fallbacks == 2


def test_an_unknown_grouping_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown split.group_by 'label'; choose one of album, artist"):
        groups.group_keys([], "label")


def test_a_genre_with_one_group_is_refused_naming_genre_count_grouping_and_fixes():
    pairs = [("rock", "A/X"), ("rock", "A/Y"), ("jazz", "B/Z"), ("jazz", "B/Z")]
    with pytest.raises(groups.TooFewGroups) as refused:
        groups.check_splittable(pairs, SplitConfig(), where="preflight")
    text = refused.value.paragraph()
    assert "genre jazz has 1 album folder" in text and "rock" not in text.split("Fix:")[0]
    assert "--group-by album" in text and "(preflight)" in text
    assert "`--group-by track`" in refused.value.fix and "--genres" in refused.value.fix


def test_protocols_without_a_held_out_draw_are_not_refused():
    one = [("jazz", "B/Z")]
    groups.check_splittable(one, SplitConfig(protocol="fault-filtered", split_dir="lists"), where="x")
    groups.check_splittable(one, SplitConfig(ratios=(1.0, 0.0, 0.0)), where="x")
    with pytest.raises(groups.TooFewGroups):
        groups.check_splittable(one, SplitConfig(protocol="hash"), where="x")
