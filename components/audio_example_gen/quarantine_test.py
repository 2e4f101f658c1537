"""The run summary: exact counts, group counts, and at most LISTED_AT_MOST names per list."""
from __future__ import annotations

import json
import random

from components.audio_example_gen import checks, quarantine

GENRES = ("rock", "jazz")


def records(n: int = 60) -> list[dict]:
    """n ingested tracks (two per album, every 3rd truncated, every 4th cut), n quarantined, n excluded."""
    out = []
    for i in range(n):
        genre, split = GENRES[i % 2], ("train", "eval", "test")[i % 3]
        album = f"A/{i // 2:03d}"
        out.append({"path": f"{genre}/{album}/{i:03d}.wav", "genre": genre, "track_id": f"{album}/{i:03d}",
                    "group": album, "split": split, "status": "ingested", "reason": "", "detail": "",
                    "segments": 3 if i % 4 else 2, "segments_in_track": 3, "seconds": 3.0,
                    "truncated": i % 3 == 0})
        out.append({"path": f"{genre}/bad/{i:03d}.wav", "genre": genre, "track_id": f"bad/{i:03d}", "split": None,
                    "status": "quarantined", "reason": "empty" if i % 2 else "undecodable", "detail": "d",
                    "segments": 0, "seconds": 0.0, "truncated": False})
        out.append({"path": f"{genre}/cover{i:03d}.jpg", "genre": "", "track_id": "", "split": None,
                    "status": "excluded", "reason": "not_audio_extension", "detail": "", "segments": 0,
                    "seconds": 0.0, "truncated": False})
    random.Random(0).shuffle(out)  # Beam writes files.jsonl in no particular order
    return out


def test_lists_are_capped_to_the_first_names_and_counts_stay_exact():
    summary = quarantine.summarize(records(), 1.0, GENRES, ignored_non_audio_files=[f"x{i:03d}.txt" for i in range(45)])
    limit = quarantine.LISTED_AT_MOST
    assert summary["files"] == {"discovered": 180, "ingested": 60, "quarantined": 60, "excluded": 60}
    assert summary["quarantine_reasons"] == {"empty": 30, "undecodable": 30}
    assert [q["path"] for q in summary["quarantined"]] == sorted(f"{GENRES[i % 2]}/bad/{i:03d}.wav"
                                                                 for i in range(60))[:limit]
    assert len(summary["excluded"]["not_audio_extension"]) == limit
    assert summary["excluded_counts"] == {"not_audio_extension": 60}
    assert (len(summary["truncated"]), summary["truncated_count"]) == (limit, 20)
    assert (len(summary["cut_tracks"]), summary["cut_tracks_count"]) == (15, 15)
    assert summary["ignored_non_audio_files"] == [f"x{i:03d}.txt" for i in range(limit)]
    assert summary["ignored_non_audio_files_count"] == 45
    assert summary["listed_at_most"] == limit
    long_lists = [k for k, v in summary.items() if isinstance(v, list) and len(v) > limit]
    assert long_lists == []


def test_groups_are_counted_per_split_and_per_genre_and_split():
    summary = quarantine.summarize(records(), 1.0, GENRES, group_by="album", group_fallbacks=0)
    # Tracks 2k and 2k+1 share album A/k but land in splits (2k % 3) and (2k+1 % 3): 30 albums, each
    # counted in both of its splits.
    assert sum(summary["splits"][s]["tracks"] for s in summary["splits"]) == 60
    assert {s: v["groups"] for s, v in summary["splits"].items()} == {"train": 20, "eval": 20, "test": 20}
    assert summary["genres"]["rock"]["train"]["groups"] == 10
    assert summary["group_by"] == "album"
    assert "--group-by album" in quarantine.format_table(summary)


def test_messages_name_a_few_files_and_the_exact_total():
    summary = quarantine.summarize(records(), 1.0, GENRES)
    warned = " ".join(checks.warnings(summary, GENRES, 3))
    assert "and 10 more" in warned  # 20 truncated files: 10 named
    try:
        checks.check_bad_fraction(summary, 0.1, "/report")
    except checks.TooManyBadFiles as error:
        assert str(error).startswith("60 of 120 audio files") and "and 50 more" in str(error)
    else:
        raise AssertionError("60 of 120 bad files passed a 10% limit")


def test_the_report_streams_files_jsonl_into_the_quarantine_list(tmp_path):
    files = tmp_path / "beam" / quarantine.FILES_FILE
    files.parent.mkdir()
    files.write_text("".join(json.dumps(r) + "\n" for r in records()))
    summary = quarantine.summarize(quarantine.read_records(str(files)), 1.0, GENRES)
    quarantine.write_report(str(tmp_path / "kept"), str(files), summary)
    kept = tmp_path / "kept"
    assert (kept / quarantine.FILES_FILE).read_text() == files.read_text()
    bad = [json.loads(line) for line in (kept / quarantine.QUARANTINE_FILE).read_text().splitlines()]
    assert len(bad) == 60 and set(bad[0]) == {"path", "genre", "reason", "detail"}
    assert json.loads((kept / quarantine.SUMMARY_FILE).read_text())["files"]["quarantined"] == 60


def test_tag_fallbacks_are_counted_and_warned():
    summary = quarantine.summarize(records(), 1.0, GENRES, group_by="tag-album", group_fallbacks=7)
    assert summary["group_fallbacks"] == 7
    assert any(w.startswith("7 files have no album tag") for w in checks.warnings(summary, GENRES, 3))


def test_decoded_seconds_count_only_the_windows_of_a_long_track():
    whole = {"path": "rock/a.wav", "genre": GENRES[0], "track_id": "a", "group": "a", "split": "train",
             "status": "ingested", "reason": "", "detail": "", "segments": 10, "seconds": 30.0, "truncated": False}
    windowed = {**whole, "path": "rock/b.flac", "track_id": "b", "group": "b", "seconds": 240.0,
                "decoded_seconds": 61.2}
    summary = quarantine.summarize([whole, windowed], 1.0, GENRES)
    assert (summary["audio_seconds"], summary["decoded_seconds"]) == (270.0, 91.2)


def test_tracks_alone_for_a_placeholder_name_are_counted_and_warned():
    summary = quarantine.summarize(records(), 1.0, GENRES, group_by="album", group_fallbacks=0, group_placeholders=5)
    assert summary["group_placeholders"] == 5
    assert "(5 tracks alone: a placeholder name)" in quarantine.format_table(summary)
    assert any(w.startswith("5 tracks are each a group of their own: their album is a placeholder name")
               for w in checks.warnings(summary, GENRES, 3))
