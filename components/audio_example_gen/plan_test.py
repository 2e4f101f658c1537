"""Deciding each discovered file's fate before decoding (plan.py); finding the files is audio/discovery_test.py's."""
from __future__ import annotations

import hashlib
import os

import pytest

from audio import groups
from audio.discovery import discover, input_pattern
from components.audio_example_gen import ingest
from components.audio_example_gen.plan import plan_tasks
from config.settings import PipelineConfig, SplitConfig
from tests.testkit.audio_files import touch

GENRES = PipelineConfig().genres  # the default label set
# These tests are about each file's fate, not the split: every track to train, so a genre of one
# track is not refused (splits.check_splittable; its own tests are in splits_test.py).
ALL_TRAIN = SplitConfig(ratios=(1.0, 0.0, 0.0))


def test_plan_quarantines_unknown_genres_and_duplicate_tracks_before_decoding(tmp_path):
    touch(tmp_path, "blues/blues.00000.wav", "blues/blues.00000.flac", "polka/polka.00000.wav",
          "jazz/blues.00000.wav", "jazz/jazz.00001.wav")
    tasks = {t.rel_path: t for t in plan_tasks(discover(str(tmp_path), "*/*"), ALL_TRAIN, GENRES)}
    assert tasks["polka/polka.00000.wav"].status == ingest.QUARANTINED
    assert tasks["polka/polka.00000.wav"].reason == ingest.UNKNOWN_GENRE
    # Sorted order: blues/blues.00000.flac is the first copy; the .wav is its duplicate. jazz/blues.00000.wav is
    # another track (its path under the root differs).
    assert tasks["blues/blues.00000.flac"].status == ingest.PENDING
    dup = tasks["blues/blues.00000.wav"]
    assert dup.reason == ingest.DUPLICATE_TRACK and "blues/blues.00000.flac" in dup.detail
    assert "with another extension" in dup.detail
    assert tasks["jazz/blues.00000.wav"].status == ingest.PENDING
    assert tasks["jazz/blues.00000.wav"].track_id == "jazz/blues.00000"
    assert tasks["jazz/jazz.00001.wav"].split in ("train", "eval", "test")


def test_a_track_is_its_path_under_the_root_so_same_named_files_are_different_tracks(tmp_path):
    touch(tmp_path, "rock/Artist A/First/01 Track.flac", "rock/Artist A/Second/01 Track.flac",
          "rock/Artist B/First/01 Track.wav", "rock/Artist A/First/01 Track.wav", "reggae/Artist C/X/01 Track.ogg",
          "rock/Artist C/X/01 Track.wav")
    found = discover(str(tmp_path), "*/*")
    assert {f.rel_path: f.track_id for f in found.files if f.genre == "rock"} == {
        "rock/Artist A/First/01 Track.flac": "rock/Artist A/First/01 Track",
        "rock/Artist A/First/01 Track.wav": "rock/Artist A/First/01 Track",
        "rock/Artist A/Second/01 Track.flac": "rock/Artist A/Second/01 Track",
        "rock/Artist B/First/01 Track.wav": "rock/Artist B/First/01 Track",
        "rock/Artist C/X/01 Track.wav": "rock/Artist C/X/01 Track"}
    tasks = {t.rel_path: t for t in plan_tasks(found, ALL_TRAIN, GENRES)}
    duplicated = {r: t.detail for r, t in tasks.items() if t.reason == ingest.DUPLICATE_TRACK}
    assert set(duplicated) == {"rock/Artist A/First/01 Track.wav"}
    assert "another extension" in duplicated["rock/Artist A/First/01 Track.wav"]
    assert all(tasks[r].status == ingest.PENDING for r in ("rock/Artist A/First/01 Track.flac",
                                                          "rock/Artist A/Second/01 Track.flac",
                                                          "rock/Artist B/First/01 Track.wav",
                                                          "rock/Artist C/X/01 Track.wav",
                                                          "reggae/Artist C/X/01 Track.ogg"))
    # One artist folder under two genre folders is one group (keys hold no genre), so it is in one split.
    assert tasks["rock/Artist C/X/01 Track.wav"].group == tasks["reggae/Artist C/X/01 Track.ogg"].group == "Artist C/X"


def test_plan_excludes_files_in_no_split_list(tmp_path):
    touch(tmp_path, "blues/blues.00000.flac", "blues/blues.00001.flac")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("blues/blues.00000.wav\n")
    (lists / "valid_filtered.txt").write_text("")
    (lists / "test_filtered.txt").write_text("")
    tasks = plan_tasks(discover(str(tmp_path), "*/*"), SplitConfig(protocol="fault-filtered", split_dir=str(lists)),
                       GENRES)
    assert [(t.track_id, t.status, t.split, t.reason) for t in tasks if t.genre] == [
        ("blues/blues.00000", ingest.PENDING, "train", ""),
        ("blues/blues.00001", ingest.EXCLUDED, None, "not in split lists")]


def test_entries_that_are_not_readable_files_are_listed_with_a_problem_and_quarantined(tmp_path):
    touch(tmp_path, "rock/rock.00000.wav", "rock/rock.00001.wav")
    (tmp_path / "rock" / "rock.00002.wav").symlink_to(tmp_path / "rock" / "gone.wav")
    (tmp_path / "rock" / "rock.00003.wav").symlink_to("rock.00003.wav")
    (tmp_path / "rock" / "rock.00004.wav").mkdir()
    (tmp_path / "rock" / "subfolder").mkdir()  # a folder without an audio name: skipped, as before
    os.mkfifo(tmp_path / "rock" / "rock.00005.wav")
    found = discover(str(tmp_path), "*/*")
    assert {f.rel_path: f.problem and f.problem.reason for f in found.files} == {
        "rock/rock.00000.wav": None, "rock/rock.00001.wav": None, "rock/rock.00002.wav": "broken_link",
        "rock/rock.00003.wav": "link_loop", "rock/rock.00004.wav": "is_directory",
        "rock/rock.00005.wav": "special_file"}
    assert found.other_files == []
    tasks = {t.rel_path: t for t in plan_tasks(found, ALL_TRAIN, GENRES)}
    assert [tasks[f"rock/rock.0000{i}.wav"].status for i in range(6)] == [ingest.PENDING] * 2 + [ingest.QUARANTINED] * 4
    assert tasks["rock/rock.00000.wav"].label == GENRES.index("rock")


def test_labels_and_unknown_genres_follow_the_configured_label_set(tmp_path):
    touch(tmp_path, "blues/blues.00000.wav", "polka/polka.00000.wav", "rock/rock.00000.wav")
    tasks = {t.rel_path: t for t in plan_tasks(discover(str(tmp_path), "*/*"), ALL_TRAIN, ("polka", "blues"))}
    assert (tasks["polka/polka.00000.wav"].label, tasks["blues/blues.00000.wav"].label) == (0, 1)
    assert tasks["rock/rock.00000.wav"].reason == ingest.UNKNOWN_GENRE
    assert "polka, blues" in tasks["rock/rock.00000.wav"].detail


def test_every_entry_of_the_root_has_exactly_one_record_with_one_rule_for_ingestion_and_tagger(tmp_path):
    """Nested folders, hidden files and folders, blank names, files outside a genre folder."""
    from tagging import files as tagging_files

    touch(tmp_path, "pop/pop.00000.wav", "pop/sub/x.wav", "pop/sub/deeper/y.flac", "rock/.wav", "rock/.hidden.wav",
          ".polka/polka.00000.wav", ".git/config", "rock/ .wav", "loose.wav", "rock/cover.jpg", "rock/.DS_Store")
    (tmp_path / "rock" / "album").symlink_to(tmp_path / "pop")  # a linked folder: not followed
    found = discover(str(tmp_path), "*/*")
    tasks = plan_tasks(found, ALL_TRAIN, GENRES)
    fates = {t.rel_path: (t.status, t.reason) for t in tasks}
    assert len(tasks) == len(fates) == 12
    assert fates["pop/sub/x.wav"][0] == fates["pop/sub/deeper/y.flac"][0] == ingest.PENDING
    assert {t.rel_path: t.genre for t in tasks if t.status == ingest.PENDING}["pop/sub/x.wav"] == "pop"
    for hidden in ("rock/.wav", "rock/.hidden.wav", ".polka/polka.00000.wav", ".git/config", "rock/.DS_Store"):
        assert fates[hidden] == (ingest.EXCLUDED, "hidden"), hidden
    assert fates["rock/ .wav"] == (ingest.EXCLUDED, "no_name")
    assert fates["loose.wav"] == (ingest.EXCLUDED, "no_genre_folder")
    assert fates["rock/cover.jpg"] == (ingest.EXCLUDED, "not_audio_extension")
    assert fates["rock/album"] == (ingest.EXCLUDED, "linked_folder")
    # The tagger lists the same root with the same rule: its candidates are ingestion's (the tagger
    # has no genre folders, so loose.wav is a candidate), its exclusions the same with the same reasons.
    listing = tagging_files.list_audio(str(tmp_path))
    assert sorted(rel for _, rel in listing.files) == sorted(
        r for r, (status, reason) in fates.items() if status == ingest.PENDING or reason == "no_genre_folder")
    assert {e["path"]: e["reason"] for e in listing.excluded} == {
        r: reason for r, (status, reason) in fates.items() if status == ingest.EXCLUDED and reason != "no_genre_folder"}


def test_a_folder_the_walk_cannot_list_is_a_record_not_a_silent_loss(tmp_path, monkeypatch):
    touch(tmp_path, "rock/rock.00000.wav", "jazz/locked/j.wav")
    real_scandir = os.scandir

    def refusing(path="."):  # root reads any folder whatever its mode: refuse the listing as the kernel would
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    tasks = plan_tasks(discover(str(tmp_path), "*/*"), ALL_TRAIN, GENRES)
    fates = {t.rel_path: (t.status, t.reason) for t in tasks}
    assert fates["jazz/locked"] == (ingest.QUARANTINED, "unreadable")


def test_gtzan_parent_folder_excludes_what_lies_outside_it(tmp_path):
    touch(tmp_path, "genres_original/blues/blues.00000.wav", "images_original/blues/blues00000.png", "extra.wav")
    tasks = {t.rel_path: t for t in plan_tasks(discover(str(tmp_path), input_pattern(str(tmp_path))),
                                               ALL_TRAIN, GENRES)}
    assert tasks["genres_original/blues/blues.00000.wav"].genre == "blues"
    assert (tasks["extra.wav"].status, tasks["extra.wav"].reason) == (ingest.EXCLUDED, "outside_genre_parent")
    assert tasks["images_original/blues/blues00000.png"].reason == "not_audio_extension"


def test_artist_names_repeated_across_genre_folders_ingest_whole_with_no_album_on_two_sides(tmp_path):
    layout = [f"{genre}/{artist}/{album}/0{n} Track 0{n}.wav" for genre in ("rock", "jazz", "blues")
              for artist, album in (("Artist 1", "Album 1"), ("Artist 2", "Album 2"), ("Artist 3", "Album 3"))
              for n in (1, 2)] + [f"{genre}/Unknown Artist/Unknown Album/01 Track 01.wav" for genre in ("rock", "jazz")]
    touch(tmp_path, *layout)
    found = discover(str(tmp_path), "*/*")
    with pytest.raises(groups.TooFewGroups, match="one that spans several genres is placed by hash"):
        plan_tasks(found, SplitConfig(), GENRES)  # each genre's three albums are shared: too few for three splits
    tasks = plan_tasks(found, SplitConfig(ratios=(0.7, 0.3, 0.0)), GENRES)  # two splits: enough
    assert [t.rel_path for t in tasks if t.status != ingest.PENDING] == []  # every file a track of its own
    assert len({t.track_id for t in tasks}) == len(layout)
    sides: dict[str, set[str]] = {}
    for t in tasks:
        genre, artist, album, _ = t.rel_path.split("/")
        sides.setdefault(f"{genre}/{artist}/{album}", set()).add(t.split)
        # The path under the genre folder (keys hold no genre); a placeholder album is no album: the track alone.
        assert t.group == (t.track_id if album == "Unknown Album" else f"{artist}/{album}")
    assert all(len(s) == 1 for s in sides.values()), sides


def test_files_labelled_by_tags_whose_genre_is_not_chosen_are_excluded_with_a_record(tmp_path):
    import numpy as np

    from audio import labels
    from config.settings import LabelsConfig
    from tests.testkit.library_files import encode, tag

    for i, (rel, genre, album) in enumerate((("A/X/01 a", "Rock", "X"), ("A/Y/01 b", "rock", "Y"),
                                             ("B/Z/01 c", "Jazz", "Z"), ("B/W/01 d", "jazz", "W"),
                                             ("C/V/01 e", "Polka", "V"))):
        samples = (0.2 * np.sin(np.arange(4410) * 0.02 * (i + 1))).astype(np.float32)  # no two alike
        tag(encode(tmp_path / rel, samples, 22050, "flac"), genre=genre, artist=rel[0], album=album)
    found = discover(str(tmp_path), "*/*", ("rock", "jazz"), LabelsConfig(source=labels.TAGS))
    tasks = {t.rel_path: t for t in plan_tasks(found, ALL_TRAIN, ("rock", "jazz"))}
    assert (tasks["C/V/01 e.flac"].status, tasks["C/V/01 e.flac"].reason) == (ingest.EXCLUDED, labels.GENRE_NOT_CHOSEN)
    assert "polka" in tasks["C/V/01 e.flac"].detail
    assert {r: (t.label, t.group) for r, t in tasks.items() if t.status == ingest.PENDING} == {
        "A/X/01 a.flac": (0, "a/x"), "A/Y/01 b.flac": (0, "a/y"), "B/Z/01 c.flac": (1, "b/z"),
        "B/W/01 d.flac": (1, "b/w")}  # grouped by the artist and album tags that came with the label


# The split the planner gives the synthetic set (synthetic/generator.py's names, 20 tracks x 10 genres: flat, and
# as a library of 5-track albums), as sha256 of its sorted "track_id<TAB>split" lines: a change to grouping or to
# the split's checks must leave it as it is (no name in it is a placeholder, every split is filled).
SYNTHETIC_SPLITS = {
    ("flat", "stratified"): "09eba0d5ee70bf463a22ef2356195fd38657fc410ff5470ad0e1784fdeaab8bb",
    ("flat", "hash"): "1f0575bc1fb74e6638592f08a61d61df7f82f29119d1ddc4a722a8064d25523e",
    ("library", "stratified"): "a608622df5cc72b48ee6cbe701a0be258cb04f513016dc02c56a68402f3a5bcc",
    ("library", "hash"): "d55159a951be541bb459a8e863c6df013e972747f9a32d38b98d382c986a2660",
}


@pytest.mark.parametrize("layout, protocol", sorted(SYNTHETIC_SPLITS))
def test_the_synthetic_sets_split_as_recorded(tmp_path, layout, protocol):
    from synthetic.generator import library_relative_path

    names = [f"{g}/{g}.{i:05d}.wav" if layout == "flat" else library_relative_path(g, i, 5, 2, "wav")
             for g in GENRES for i in range(20)]
    touch(tmp_path, *names)
    tasks = plan_tasks(discover(str(tmp_path), "*/*"), SplitConfig(protocol=protocol), GENRES)
    lines = sorted(f"{t.track_id}\t{t.split}" for t in tasks if t.split)
    assert len(lines) == len(names)
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == SYNTHETIC_SPLITS[layout, protocol]
