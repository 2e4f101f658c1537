"""The gates after ingestion name the cause of an empty split as the check before decoding does."""
from __future__ import annotations

import json

import pytest

from components.audio_example_gen import checks, quarantine

GENRES = ("rock", "jazz", "pop")


def ingested(genre: str, n: int, group: str, split: str) -> dict:
    track_id = f"{genre}/{group}/{n:02d} Track"
    return {"path": f"{track_id}.wav", "genre": genre, "track_id": track_id, "group": group, "split": split,
            "status": "ingested", "reason": "", "detail": "", "segments": 2, "seconds": 6.0, "truncated": False}


def check(tmp_path, records: list[dict], ratios=(0.7, 0.15, 0.15)) -> checks.EmptySplits:
    (tmp_path / quarantine.FILES_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = quarantine.summarize(records, 1.0, GENRES, group_by="album", split_dir=None)
    with pytest.raises(checks.EmptySplits) as refused:
        checks.check_splits(summary, ratios, "stratified", str(tmp_path))
    return refused.value


def test_an_empty_split_of_groups_that_span_genres_names_them_and_the_fix(tmp_path):
    """Album folders named alike under every genre (as placeholder names once were) are one group each."""
    records = [ingested(g, n, f"Unknown Artist/Unknown Album {a}", "train" if a < 3 else "eval")
               for g in GENRES for a in range(4) for n in range(2)]
    refused = check(tmp_path, records)
    assert "After ingestion the test split has no tracks (tracks per split: train 18, eval 6, test 0" in \
        refused.problem
    assert ("genres jazz (8 tracks in 4 album folders), pop (8 tracks in 4 album folders) and rock (8 tracks in 4 "
            "album folders) have too few album folders of their own") in refused.problem
    assert "the largest: Unknown Artist/Unknown Album 0 (3 genres, 6 tracks)" in refused.problem
    assert refused.fix.startswith("run with `--group-by track`")  # tried: 8 tracks a genre fill three splits


def test_an_empty_split_of_too_few_tracks_says_so(tmp_path):
    records = [ingested(g, n, f"Artist/Album {n}", ("train", "eval")[n]) for g in GENRES for n in range(2)]
    refused = check(tmp_path, records)
    assert "have too few tracks to reach all 3 splits" in refused.problem
    assert refused.fix == "add tracks to jazz, pop and rock from album folders of their own."
