"""Track-level split protocols."""
from __future__ import annotations

from collections import Counter

import pytest

from audio import groups
from components.audio_example_gen import splits
from config.settings import SplitConfig


def tracks(genre: str, numbers) -> list[splits.Track]:
    """Tracks named by their stems here; the lists name them ``genre/stem`` (discovery.AudioFile.list_key)."""
    return [splits.Track(f"{genre}.{i:05d}", genre, listed_as=f"{genre}/{genre}.{i:05d}") for i in numbers]


def write_lists(folder, train=(), valid=(), test=()) -> str:
    for name, entries in (("train", train), ("valid", valid), ("test", test)):
        (folder / splits.LIST_FILES[name]).write_text("".join(f"{e}\n" for e in entries))
    return str(folder)


def test_hash_protocol_is_stable_and_follows_the_ratios():
    many = tracks("rock", range(3000))
    plan = splits.assign(many, SplitConfig(protocol="hash", ratios=(0.7, 0.15, 0.15)))
    again = splits.assign(list(reversed(many[:500])), SplitConfig(protocol="hash", ratios=(0.7, 0.15, 0.15)))
    assert all(plan.assigned[t] == s for t, s in again.assigned.items())  # independent of the other files
    shares = Counter(plan.assigned.values())
    assert abs(shares["train"] / 3000 - 0.7) < 0.03 and abs(shares["test"] / 3000 - 0.15) < 0.03
    other_salt = splits.assign(many, SplitConfig(protocol="hash", salt="another"))
    assert other_salt.assigned != plan.assigned


def test_fault_filtered_maps_lists_to_splits_matching_on_stem(tmp_path):
    split_dir = write_lists(tmp_path, train=["blues/blues.00029.wav"], valid=["blues/blues.00000.wav"],
                            test=["blues/blues.00012.wav"])
    plan = splits.assign(tracks("blues", [29, 0, 12, 5]), SplitConfig(protocol="fault-filtered", split_dir=split_dir))
    assert plan.assigned == {"blues.00029": "train", "blues.00000": "eval", "blues.00012": "test"}
    assert plan.excluded == {"blues.00005": splits.NOT_IN_LISTS}


def test_fault_filtered_final_moves_a_hash_slice_of_train_and_valid_to_eval(tmp_path):
    numbers = range(400)
    split_dir = write_lists(tmp_path, train=[f"rock/rock.{i:05d}.wav" for i in numbers[:300]],
                            valid=[f"rock/rock.{i:05d}.wav" for i in numbers[300:350]],
                            test=[f"rock/rock.{i:05d}.wav" for i in numbers[350:]])
    cfg = SplitConfig(protocol="fault-filtered-final", split_dir=split_dir, ratios=(0.8, 0.1, 0.1))
    plan = splits.assign(tracks("rock", numbers), cfg)
    shares = Counter(plan.assigned.values())
    assert shares["test"] == 50 and shares["train"] + shares["eval"] == 350
    assert 15 <= shares["eval"] <= 55  # ~10% of 350
    assert all(plan.assigned[f"rock.{i:05d}"] == "test" for i in numbers[350:])


def test_lists_trainval_per_genre(tmp_path):
    # jazz has tracks from both lists: train -> train, valid split between eval and test.
    # blues has only valid-list tracks here: hash split over all three splits.
    jazz_train, jazz_valid = range(0, 40), range(40, 100)
    split_dir = write_lists(
        tmp_path,
        train=[f"jazz/jazz.{i:05d}.wav" for i in jazz_train] + ["blues/blues.00099.wav"],  # not on disk
        valid=[f"jazz/jazz.{i:05d}.wav" for i in jazz_valid] + [f"blues/blues.{i:05d}.wav" for i in range(60)],
        test=["jazz/jazz.00100.wav"])
    present = tracks("jazz", range(101)) + tracks("blues", range(60))
    plan = splits.assign(present, SplitConfig(protocol="lists-trainval", split_dir=split_dir,
                                              ratios=(0.6, 0.2, 0.2)))
    assert all(plan.assigned[f"jazz.{i:05d}"] == "train" for i in jazz_train)
    held_out = Counter(plan.assigned[f"jazz.{i:05d}"] for i in jazz_valid)
    assert held_out == {"eval": 30, "test": 30}  # 0.2 : 0.2 of the 60 valid-list tracks
    assert plan.excluded["jazz.00100"] == splits.IN_TEST_LIST
    blues = Counter(plan.assigned[f"blues.{i:05d}"] for i in range(60))
    assert blues == {"train": 36, "eval": 12, "test": 12}


def test_quotas_round_by_largest_remainder():
    assert splits.quotas(10, (0.7, 0.15, 0.15)) == [7, 2, 1]
    assert splits.quotas(9, (0.7, 0.15, 0.15)) == [6, 2, 1]
    assert splits.quotas(17, (0.15, 0.15)) == [9, 8]
    assert splits.quotas(0, (0.7, 0.15, 0.15)) == [0, 0, 0]
    assert sum(splits.quotas(1234, (0.6, 0.25, 0.15))) == 1234


def test_missing_list_file_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "train_filtered.txt").write_text("blues/blues.00029.wav\n")
    with pytest.raises(FileNotFoundError, match="valid_filtered.txt is missing.*split_dir must hold"):
        splits.assign(tracks("blues", [29]), SplitConfig(protocol="fault-filtered", split_dir=str(tmp_path)))


def test_a_track_in_two_lists_is_an_error(tmp_path):
    split_dir = write_lists(tmp_path, train=["pop/pop.00001.wav"], test=["pop/pop.00001.flac"])
    with pytest.raises(ValueError, match="pop/pop.00001 is listed in both"):
        splits.read_split_lists(split_dir)


@pytest.mark.parametrize("cfg,message", [
    (SplitConfig(protocol="random"), "Unknown split protocol"),
    (SplitConfig(ratios=(0.5, 0.5, 0.5)), "summing to 1"),
    (SplitConfig(protocol="fault-filtered"), "set split.split_dir"),
    (SplitConfig(max_bad_fraction=2.0), "max_bad_fraction"),
])
def test_invalid_configuration_is_a_clear_error(cfg, message):
    with pytest.raises(ValueError, match=message):
        splits.validate(cfg)


@pytest.mark.parametrize("per_genre", [3, 4, 5, 8, 20])
def test_stratified_puts_every_genre_in_every_split(per_genre):
    tracks = [splits.Track(f"{g}.{i:05d}", g) for g in ("blues", "jazz", "rock") for i in range(per_genre)]
    plan = splits.assign(tracks, SplitConfig(protocol="stratified"))
    assert len(plan.assigned) == len(tracks)
    for genre in ("blues", "jazz", "rock"):
        counts = Counter(split for track, split in plan.assigned.items() if track.startswith(genre))
        assert set(counts) == {"train", "eval", "test"}, (genre, counts)
        assert counts["train"] >= counts["eval"] and counts["train"] >= counts["test"]
    if per_genre == 20:
        assert Counter(plan.assigned.values()) == {"train": 42, "eval": 9, "test": 9}
    assert splits.assign(tracks, SplitConfig(protocol="stratified")).assigned == plan.assigned  # deterministic


def test_stratified_leaves_a_two_track_genre_without_a_test_track():
    """Fewer tracks than splits: the rule cannot cover them all (the ingestion checks then say so)."""
    plan = splits.assign([splits.Track("a.1", "a"), splits.Track("a.2", "a")], SplitConfig(protocol="stratified"))
    assert sorted(plan.assigned.values()) == ["eval", "train"]


# ----- groups: every track of a group in one split, stable where the genre is large ---------

def library(genres=("rock", "jazz"), artists=8, albums=4, songs=3, first_artist=0) -> list[splits.Track]:
    """``<genre>/Artist NN/Album M/0S Song``, grouped by album folder (the default)."""
    out = []
    for genre in genres:
        for a in range(first_artist, first_artist + artists):
            for b in range(albums):
                for s in range(songs):
                    track_id = f"{genre} Artist {a:02d}/Album {b}/{s:02d} Song"
                    out.append(splits.Track(track_id, genre, track_id.rpartition("/")[0]))
    return out


@pytest.mark.parametrize("protocol", ["stratified", "hash"])
def test_every_track_of_a_group_lands_in_one_split(protocol):
    many = library()
    plan = splits.assign(many, SplitConfig(protocol=protocol))
    sides: dict[str, set[str]] = {}
    for t in many:
        sides.setdefault(t.group_key, set()).add(plan.assigned[t.track_id])
    assert all(len(s) == 1 for s in sides.values())
    assert set().union(*sides.values()) == {"train", "eval", "test"}


def test_stratified_is_stable_from_30_groups_per_genre_when_tracks_and_groups_are_added():
    config = SplitConfig()
    before = library(artists=8)  # 32 albums per genre
    plan = splits.assign(before, config)
    grown = library(artists=8, songs=5) + library(artists=6, first_artist=8)  # new songs, new albums
    after = splits.assign(grown, config)
    assert len(after.assigned) > len(plan.assigned)
    assert {t: after.assigned[t] for t in plan.assigned} == plan.assigned


def test_stratified_below_30_groups_keeps_exact_quotas_over_groups():
    small = library(genres=("rock",), artists=5, albums=2)  # 10 albums of 3 songs
    plan = splits.assign(small, SplitConfig())
    per_split = Counter(plan.assigned[t.track_id] for t in small)
    assert per_split == {"train": 21, "eval": 6, "test": 3}  # 7/2/1 albums by largest remainder


def test_a_group_spanning_genres_is_assigned_by_hash_in_both():
    shared = [splits.Track(f"Both/Album/{i:02d}", genre, "Both") for i, genre in enumerate(["rock", "jazz"] * 3)]
    config = SplitConfig()
    plan = splits.assign(library(artists=2, albums=2) + shared, config)
    expected = splits.by_ratios(splits.hash_fraction(config.salt, "Both"), config.ratios)
    assert {plan.assigned[t.track_id] for t in shared} == {expected}


def test_flat_folders_split_exactly_as_by_track():
    flat = tracks("rock", range(20)) + tracks("jazz", range(20))
    grouped = [splits.Track(t.track_id, t.genre, t.track_id) for t in flat]  # a flat file is its own group
    assert splits.assign(flat, SplitConfig()).assigned == splits.assign(grouped, SplitConfig()).assigned


# ----- feasibility: refused before decoding, with the cause and the fixes that work -----------

def alone(tracks_: list[splits.Track]) -> list[splits.Track]:
    return [splits.Track(t.track_id, t.genre) for t in tracks_]


def refusal(tracks_: list[splits.Track], config: SplitConfig) -> groups.TooFewGroups:
    with pytest.raises(groups.TooFewGroups) as refused:
        splits.check_splittable(tracks_, config, "preflight", lambda by: alone(tracks_) if by == "track" else None)
    return refused.value


def test_a_genre_of_one_album_is_refused_naming_the_cause_and_the_fixes_that_work():
    one_album = [splits.Track(f"jazz/B/Z/{i}", "jazz", "B/Z") for i in range(4)]
    rock = library(genres=("rock",), artists=2, albums=2, songs=2)
    pop = library(genres=("pop",), artists=2, albums=2, songs=2)
    refused = refusal(rock + pop + one_album, SplitConfig())
    assert refused.problem == ("Split protocol stratified with --group-by album cannot give every genre a track in "
                               "train, eval and test: genre jazz (4 tracks in 1 album folder) has too few album "
                               "folders to reach all 3 splits, each album folder staying in one split.")
    assert refused.fix.startswith("run with `--group-by track` (tracks of one album folder may then be on both "
                                  "sides of the split), or leave jazz out with `--genres pop,rock`")
    assert "(preflight)" in refused.paragraph() and "add tracks to jazz from album folders of their own" in refused.fix
    for works in (SplitConfig(group_by="track"), SplitConfig()):  # each fix, followed
        followed = alone(rock + pop + one_album) if works.group_by == "track" else rock + pop
        splits.check_splittable(followed, works, "preflight", lambda by: None)


def test_a_genre_with_fewer_tracks_than_splits_is_told_so_and_offered_no_regrouping():
    two = [splits.Track(f"jazz.{i}", "jazz") for i in range(2)]
    refused = refusal(tracks("rock", range(9)) + two, SplitConfig(group_by="track"))
    assert "genre jazz (2 tracks) has too few tracks to reach all 3 splits" in refused.problem
    assert refused.fix == "add tracks to jazz."  # one genre would be left: no --genres


def test_groups_that_span_genres_are_named_largest_first_when_they_leave_a_split_empty():
    shared = [splits.Track(f"{g}/Band/Album {a}/{s}", g, f"Band/Album {a}")
              for g in ("rock", "jazz", "pop") for a in range(3) for s in range(2 + (a == 1))]
    refused = refusal(shared, SplitConfig())
    assert "genres jazz (7 tracks in 3 album folders), pop (7 tracks in 3 album folders) and rock (7 tracks" in \
        refused.problem
    assert ("too few album folders of their own: one that spans several genres is placed by hash, in one split "
            "for all of them; the largest: Band/Album 1 (3 genres, 9 tracks), Band/Album 0 (3 genres, 6 tracks)"
            ) in refused.problem
    assert refused.fix.startswith("run with `--group-by track`") and "--split-ratios" in refused.fix
    splits.check_splittable(alone(shared), SplitConfig(group_by="track"), "x", lambda by: None)  # the fix works


def test_protocols_and_ratios_without_a_held_out_draw_are_not_refused():
    one = [splits.Track("jazz/B/Z/1", "jazz", "B/Z")]
    splits.check_splittable(one, SplitConfig(protocol="fault-filtered", split_dir="lists"), "x", lambda by: None)
    splits.check_splittable(one, SplitConfig(ratios=(1.0, 0.0, 0.0)), "x", lambda by: None)
    refused = refusal(one, SplitConfig(protocol="hash"))  # hash promises a genre no share, but two groups
    assert "cannot give every split tracks and every genre two groups: genre jazz (1 track in 1 album folder) " \
           "has too few tracks to reach train and a held-out split" in refused.problem


def test_hash_refuses_only_an_empty_split_or_a_genre_of_one_group():
    small = tracks("rock", range(2)) + tracks("jazz", range(2))  # 4 groups in all: test gets none
    config = SplitConfig(protocol="hash")
    assert splits.gaps(small, splits.assign(small, config).assigned, config) == {"rock": ["test"], "jazz": ["test"]}
    refused = refusal(small, config)
    assert "have no track in test: the hash draw put none there" in refused.problem
    assert "`--split stratified`" not in refused.fix  # two tracks a genre cannot fill three splits either
    enough = tracks("rock", range(10)) + tracks("jazz", range(10))
    missing = splits.gaps(enough, splits.assign(enough, config).assigned, config)
    assert missing == {}  # though a genre may miss a split by hash
