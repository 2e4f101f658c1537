"""CD rips under their ripper's default names, end to end: ``<genre>/Unknown Artist/Unknown Album N/0T Track 0T.wav``.

The same placeholder folders under every genre are no album, so every track is a group of its own: through
`local_runner.main` the library is ingested with every genre in every split, the model is pushed, and the summary
counts the tracks left alone. A library whose albums really span the genres (one artist folder, the same albums
under every genre) is refused in preflight, before any file is decoded, with the cause and a fix that works when
followed. Where the real GTZAN clips lie beside the project, their splits are the recorded ones. Small on purpose:
80 tracks of 6 s, the ANN, one epoch.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter

import pytest
import soundfile as sf

import local_runner
from audio.discovery import discover, input_pattern
from components.audio_example_gen.plan import make_plan
from config.settings import GENRES, SPLITS, SplitConfig
from conftest import SHARED_GTZAN
from local_run.run import checked_config
from synthetic.generator import render_track

SECONDS = 6.0
RATE = 22050
ALBUMS, SONGS = 4, 2  # per genre
BEAM = ["--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory"]
BARS = ["--min-accuracy", "0", "--min-clip-accuracy", "0", "--min-test-clips", "1", "--max-accuracy-drop", "1"]


@pytest.fixture(scope="module")
def ripped_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rips")
    for index, (genre, album, song) in enumerate((g, a, s) for g in GENRES for a in range(ALBUMS)
                                                 for s in range(1, SONGS + 1)):
        folder = root / genre / "Unknown Artist" / f"Unknown Album {album}"
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{song:02d} Track {song:02d}.wav", render_track(genre, index, SECONDS, RATE), RATE,
                 subtype="PCM_16")
    started = time.time()
    summary = local_runner.main(["--data-root", str(root), "--output-dir", str(tmp_path_factory.mktemp("out")),
                                 "--model", "ann", "--epochs", "1", *BARS, *BEAM])
    return summary, time.time() - started


def test_rips_named_by_placeholders_are_split_track_by_track_and_pushed(ripped_run):
    summary, seconds = ripped_run
    tracks = len(GENRES) * ALBUMS * SONGS
    with open(os.path.join(summary["data"]["report"], "files.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert Counter(r["status"] for r in records) == {"ingested": tracks}
    assert {(r["genre"], r["split"]) for r in records} == {(g, s) for g in GENRES for s in SPLITS}
    assert all(r["group"] == r["track_id"] for r in records)  # no placeholder ties two tracks
    assert summary["data"]["group_placeholders"] == tracks
    assert any(w.startswith(f"{tracks} tracks are each a group of their own") for w in summary["data"]["warnings"])
    assert summary.get("pushed_to"), summary.get("gate")
    print(f"placeholder library run: {seconds:.0f} s")


def test_albums_that_span_every_genre_are_refused_before_decoding_and_the_fix_works(tmp_path, capsys):
    root = tmp_path / "band"
    for genre in GENRES:
        for album in ("First", "Second", "Third"):
            (root / genre / "The Band" / album).mkdir(parents=True)
            for song in (1, 2):  # one byte each: nothing here could be decoded
                (root / genre / "The Band" / album / f"{song:02d} Song.wav").write_bytes(b"x")
    flags = ["--data-root", str(root), "--output-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        local_runner.main(flags)
    message = capsys.readouterr().err
    assert message.startswith("Run not started: Split protocol stratified with --group-by album cannot give every "
                               "genre a track in train, eval and test")
    assert "album folders of their own: one that spans several genres is placed by hash" in message
    assert "the largest: The Band/First (10 genres, 20 tracks)" in message
    [fix] = re.findall(r"`([^`]+)`", message.split("Fix:")[1])
    assert fix == "--group-by track"
    config = checked_config(local_runner.parse_args([*flags, *fix.split()]))  # followed: preflight passes
    plan = make_plan(discover(str(root), "*/*"), config.split, config.genres)
    assert {(t.genre, t.split) for t in plan.tasks} == {(g, s) for g in GENRES for s in SPLITS}
    assert not (tmp_path / "out").exists()  # the refused run wrote nothing


# sha256 of the sorted "track_id<TAB>split" lines the planner gives the 456 real clips: a change to grouping or to
# the split's checks must leave them as they are (GTZAN's names hold no placeholder).
REAL_SPLITS = {
    "stratified": "b51ad0dfc450119429a08d70ad0a601a7c953c8ac7124d11abfd858752d697a8",
    "hash": "cf17dee0a3ce814e0ae307a6bc11cbc83a335a48f7e203108a607ce1c7cc6dfa",
    "fault-filtered": "e0619edb314741195524cb66babb592fd2673dd94e25389fcf7a84f85c28b3ec",
    "lists-trainval": "c9103a7f63340ed8e91048902148293b021d47560383a4f129a26626f148ac9f",
}


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_GTZAN / "audio").is_dir(), reason=f"needs the real GTZAN clips in {SHARED_GTZAN}")
@pytest.mark.parametrize("protocol", sorted(REAL_SPLITS))
def test_the_real_clips_split_as_recorded(protocol):
    root = str(SHARED_GTZAN / "audio")
    split = SplitConfig(protocol=protocol, split_dir=str(SHARED_GTZAN / "splits"))
    tasks = make_plan(discover(root, input_pattern(root)), split, GENRES).tasks
    lines = sorted(f"{t.track_id}\t{t.split}" for t in tasks if t.split)
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == REAL_SPLITS[protocol]
