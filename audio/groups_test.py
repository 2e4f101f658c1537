"""The grouping rules: folders, the files' own tags (written here with mutagen), and the refusal."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.oggvorbis import OggVorbis

from audio import groups, labels


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


# One case per spelling rippers and taggers leave (iTunes, Windows Media Player, EAC, beets, MusicBrainz Picard).
@pytest.mark.parametrize("name", [
    "Unknown Artist", "Unknown Album", "Unknown", "Untitled", "Various Artists", "unknown artist", "UNKNOWN ALBUM",
    "Unknown Album 2", "Unknown Album (11/29/2026 3:37:20 AM)", "Unknown Album (11-29-2026 3-37-20 AM)",
    "Unknown Album [2019]", "Unknown Disc", "Unknown Title", "Untitled Album", "Various", "VA", "V.A.",
    "[unknown]", "[no artist]", "[non-album tracks]", "Non-Album", "No Artist", "No Album", "Artist Unknown",
    "Album Unknown", "unknown_artist", "<Unknown>", "Unknown Artist - Unknown Album", "", "   ", "\t",
])
def test_placeholder_names_are_recognised_in_every_spelling(name):
    assert groups.is_placeholder(name)


@pytest.mark.parametrize("name", [
    "Unknown Mortal Orchestra", "The Unknown", "Various Positions", "Untitled Unmastered", "Unknown Pleasures",
    "Into the Unknown", "( )", "(pronounced 'leh-'nerd 'skin-'nerd)", "Unknown Artist - Greatest Hits", "Album 2",
])
def test_real_names_that_resemble_placeholders_are_names(name):
    assert not groups.is_placeholder(name)


@pytest.mark.parametrize("path, group_by, key", [
    ("Unknown Artist/Unknown Album 0/01 Track 01", "album", groups.ALONE),
    ("Unknown Artist/Unknown Album (11-29-2026 3-37-20 AM)/CD1/01 Track 01", "album", groups.ALONE),
    ("Unknown Artist/Real Album/01 Track 01", "album", "Unknown Artist/Real Album"),  # the album names it
    ("Untitled/01 Track 01", "album", groups.ALONE),
    ("Unknown Artist/Real Album/01 Track 01", "artist", groups.ALONE),
    ("Various Artists/Now 12/01 Song", "artist", "Various Artists/Now 12"),  # a compilation: by its album
    ("VA/Unknown Album/01 Song", "artist", groups.ALONE),
    ("Various Artists/01 Song", "artist", groups.ALONE),
    ("Band/Unknown Album/01 Song", "artist", "Band"),  # a real artist groups whatever its album folders
])
def test_a_placeholder_folder_groups_nothing(path, group_by, key):
    assert groups.folder_key(path, group_by) == key


@pytest.mark.parametrize("artist, album, group_by, key", [
    ("The Band", "Unknown Album", "tag-album", groups.ALONE),
    ("Unknown Artist", "Live", "tag-album", "unknown artist/live"),
    ("[unknown]", "Live", "tag-artist", groups.ALONE),
    ("Various Artists", "Now 12", "tag-artist", "various artists/now 12"),
    ("Various Artists", "Untitled", "tag-artist", groups.ALONE),
    ("Various Artists", None, "tag-artist", None),  # no album to group by: the folder rule decides
    ("The Band", "  ", "tag-album", None),           # an empty tag is no tag: the folder rule decides
])
def test_a_placeholder_tag_groups_nothing(artist, album, group_by, key):
    assert groups.tags_key(labels.Tags(artist=artist, album=album), group_by) == key


def test_placeholder_tracks_are_each_alone_and_counted_whatever_the_genre():
    """The same placeholder folders under two genre folders: four tracks, four groups, none shared."""
    under = [f"Unknown Artist/Unknown Album {n}/01 Track 01" for n in (0, 1)] + ["Band/Album/01 Song"]
    files = [(f"/r/{g}/{path}.wav", f"{g}/{path}", path) for g in ("rock", "jazz") for path in under]
    grouping = groups.group_keys(files, "album")
    placeholders = {track_id for _, track_id, path in files if path.startswith("Unknown")}
    assert grouping.keys == {track_id: track_id if track_id in placeholders else "Band/Album"
                             for _, track_id, _ in files}
    assert grouping.alone == placeholders and grouping.fallbacks == 0
    by_tags = groups.group_keys([groups.Member(*f, labels.Tags(genre="Rock")) for f in files], "album")
    assert by_tags.alone == placeholders and by_tags.fallbacks == 6  # no album tag: the folder rule, as above
