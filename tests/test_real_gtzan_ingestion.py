"""AudioExampleGen on the real GTZAN clips (../shared/data/gtzan), protocol fault-filtered.

Expected counts are re-derived here from the list files and the folder, independently of
the component's split code: train list -> train, valid list -> eval, test list -> test
(none of the test list's clips is in this partial copy, so test is empty). Segments per
track come from each file's header: frames // segment length (3 s hops, last partial dropped).
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import soundfile as sf

from components.audio_example_gen.conftest import MULTI_PROCESSING, read_examples, run_executor
from components.audio_example_gen.quarantine import SUMMARY_FILE
from config.settings import GENRES, SPLITS, PipelineConfig
from conftest import SHARED_GTZAN, shared_manifest

AUDIO = SHARED_GTZAN / "audio"
LISTS = SHARED_GTZAN / "splits"
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not AUDIO.is_dir(), reason=f"needs the real GTZAN clips in {AUDIO} (not in this checkout)"),
]
MANIFEST = shared_manifest()
MANIFEST_CLIPS = len(MANIFEST)
LIST_TO_SPLIT = {"train_filtered.txt": "train", "valid_filtered.txt": "eval", "test_filtered.txt": "test"}


def expected_tracks() -> dict[str, str]:
    """track_id -> split, for list entries whose clip exists here (any extension)."""
    present = {p.stem: p for p in AUDIO.glob("*/*.*")}
    expected = {}
    for list_name, split in LIST_TO_SPLIT.items():
        for entry in (LISTS / list_name).read_text().split():
            stem = Path(entry).stem
            if stem in present and present[stem].parent.name == Path(entry).parent.name:
                expected[stem] = split
    return expected


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    config = PipelineConfig()
    config.split = dataclasses.replace(config.split, protocol="fault-filtered", split_dir=str(LISTS))
    out = tmp_path_factory.mktemp("real_gtzan")
    examples, report, error = run_executor(AUDIO, config, out, MULTI_PROCESSING)
    # The partial copy holds no test-list clip: an empty test split stops the run, after the report.
    assert error is not None and "test 0" in str(error), error
    summary = json.loads((Path(report.uri) / SUMMARY_FILE).read_text())
    return config, summary, read_examples(examples.uri)


def test_counts_per_split_and_genre_match_the_lists(real_run):
    config, summary, written = real_run
    expected = expected_tracks()
    quarantined = {Path(q["path"]).stem: q for q in summary["quarantined"]}
    assert quarantined == {}, f"real clips quarantined: {quarantined}"
    want_tracks = Counter((GENRES.index(t.split(".")[0]), split) for t, split in expected.items())
    for genre_index, genre in enumerate(GENRES):
        for split in SPLITS:
            assert summary["genres"][genre][split]["tracks"] == want_tracks[(genre_index, split)], (genre, split)
    assert summary["splits"]["test"] == {"tracks": 0, "segments": 0, "seconds": 0.0, "groups": 0}
    for split in SPLITS:  # GTZAN's flat folders: every clip is its own group
        assert summary["splits"][split]["groups"] == summary["splits"][split]["tracks"], split
    assert summary["files"] == {"discovered": MANIFEST_CLIPS, "ingested": MANIFEST_CLIPS, "quarantined": 0,
                                "excluded": 0}

    # The examples actually written: each track in its list's split, with every full 3 s segment.
    got = defaultdict(Counter)
    for split, rows in written.items():
        for row in rows:
            got[row["track_id"].decode().rpartition("/")[2]][split] += 1  # genre/stem: the stem
    assert {t: set(c) for t, c in got.items()} == {t: {s} for t, s in expected.items()}
    # Both encodings the folder holds (FLAC and Ogg Vorbis, as the manifest says) are ingested whole.
    segment = config.audio.segment_samples
    encodings = Counter()
    for row in MANIFEST:
        path = SHARED_GTZAN / row["path"]
        assert sum(got[path.stem].values()) == sf.info(str(path)).frames // segment, path.name
        encodings[row["encoding"]] += 1
    assert set(encodings) == {"flac", "vorbis"}, encodings
    assert {p.suffix for p in AUDIO.glob("*/*.*")} == {".flac", ".ogg"}


def test_real_clips_ingest_losslessly_and_report_throughput(real_run):
    _, summary, _ = real_run
    assert summary["audio_seconds"] == pytest.approx(MANIFEST_CLIPS * 30.0, rel=0.01)
    assert summary["audio_seconds_per_wall_second"] > 0
    print(f"\nreal GTZAN ingestion: {json.dumps({s: summary['splits'][s] for s in SPLITS})}, "
          f"{summary['audio_seconds']:.0f} s of audio in {summary['wall_seconds']:.1f} s "
          f"({summary['audio_seconds_per_wall_second']}x real time)")


def test_lists_trainval_protocol_on_the_partial_copy(tmp_path):
    """Genres with clips from both lists keep train -> train and hold out the valid clips;
    genres with clips from one list only are hash-split. No track in two splits."""
    config = PipelineConfig()
    config.split = dataclasses.replace(config.split, protocol="lists-trainval", split_dir=str(LISTS))
    examples, report, error = run_executor(AUDIO, config, tmp_path, MULTI_PROCESSING)
    assert error is None, error
    summary = json.loads((Path(report.uri) / SUMMARY_FILE).read_text())
    listed = expected_tracks()  # track -> "train" (train list) or "eval" (valid list)
    both_lists = {t.split(".")[0] for t, s in listed.items() if s == "train"} & \
        {t.split(".")[0] for t, s in listed.items() if s == "eval"}
    assert both_lists  # at least one genre has clips from both lists (derived from the lists, not assumed)
    splits_of = defaultdict(set)
    for split, rows in read_examples(examples.uri).items():
        for row in rows:
            splits_of[row["track_id"].decode().rpartition("/")[2]].add(split)  # genre/stem: the stem
    assert all(len(s) == 1 for s in splits_of.values()) and len(splits_of) == MANIFEST_CLIPS
    for track, (split,) in splits_of.items():
        if track.split(".")[0] in both_lists:
            assert (split == "train") == (listed[track] == "train"), track
    for split in SPLITS:
        assert summary["splits"][split]["tracks"] > 0, split
    print(f"\nlists-trainval on the real clips: {json.dumps(summary['splits'])}\n"
          + "\n".join(f"  {g}: " + ", ".join(f"{s} {summary['genres'][g][s]['tracks']}" for s in SPLITS)
                      for g in GENRES))
