"""Records, shards and the merged outputs of the tagger (no Beam pipeline needed)."""
from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from apache_beam.ml.inference.base import PredictionResult

from tagging import outputs

GENRES = ["blues", "classical", "country", "disco"]


def tagged(path: str, scores: list[float]) -> dict:
    genre = GENRES[max(range(len(scores)), key=scores.__getitem__)]
    return outputs.to_record(PredictionResult({"path": path, "seconds": 30.0}, {
        "genre": genre, "scores": scores, "genres": GENRES, "segments": 10}, "7"))


def test_a_prediction_becomes_a_row_with_the_top_three_best_first():
    row = tagged("a/x.wav", [0.1, 0.5, 0.3, 0.1])
    assert row["status"] == outputs.TAGGED and row["genre"] == "classical" and row["model_version"] == "7"
    assert [t["genre"] for t in row["top3"]] == ["classical", "country", "blues"]  # a tie keeps genre order
    assert row["scores"]["disco"] == 0.1


def test_refused_files_become_quarantine_records_with_their_reason():
    by_reader = outputs.to_record(
        PredictionResult({"path": "b.wav", "reason": "not_audio", "detail": "text"}, None, "7"))
    by_model = outputs.to_record(PredictionResult({"path": "c.wav", "seconds": 1.0},
                                                  {"reason": "model_rejected", "detail": "too short"}, "7"))
    assert by_reader == {"status": "quarantined", "path": "b.wav", "reason": "not_audio", "detail": "text"}
    assert by_model["reason"] == "model_rejected" and by_model["detail"] == "too short"


def test_shards_are_written_whole_and_a_rerun_shard_replaces_itself(tmp_path):
    writer = outputs.WriteShards(str(tmp_path), flush_every=2)
    records = [tagged(f"g/{i}.wav", [0.7, 0.1, 0.1, 0.1]) for i in range(5)]
    for _ in range(2):  # the same bundle twice, as after a retried task
        writer.start_bundle()
        for r in records:
            list(writer.process(r))
        writer.finish_bundle()
    assert len(outputs.shard_paths(str(tmp_path))) == 3  # 2 + 2 + 1 records, the second pass overwrote them
    assert not list(tmp_path.glob("*.tmp-*"))
    assert [r["path"] for r in outputs.read_shards(str(tmp_path))] == [f"g/{i}.wav" for i in range(5)]


def test_outputs_hold_the_same_rows_in_csv_jsonl_and_parquet(tmp_path):
    records = [tagged("b.wav", [0.1, 0.2, 0.3, 0.4]), tagged("a.wav", [0.9, 0.05, 0.03, 0.02]),
               outputs.to_record(PredictionResult({"path": "c.wav", "reason": "empty", "detail": "0 bytes"},
                                                  None, "7"))]
    records.sort(key=lambda r: r["path"])
    summary = outputs.summarize(records, 2.0, GENRES)
    assert summary["files"] == {"listed": 3, "tagged": 2, "quarantined": 1}
    assert summary["genres"] == {"blues": 1, "classical": 0, "country": 0, "disco": 1}
    assert summary["audio_seconds_per_wall_second"] == 30.0 and summary["files_per_second"] == 1.5
    paths = outputs.write_outputs(str(tmp_path), records, summary)
    csv_lines = (tmp_path / "tags.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == outputs.CSV_COLUMNS
    assert csv_lines[1].startswith("a.wav,blues,blues,0.900000,classical,0.050000,country,0.030000,30.0,10,7")
    rows = [json.loads(x) for x in (tmp_path / "tags.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == ["a.wav", "b.wav"]
    table = pq.read_table(paths["tags.parquet"]).to_pylist()
    assert table[1]["top1_genre"] == "disco" and table[1]["top1_score"] == pytest.approx(0.4)
    assert [json.loads(x)["reason"] for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()] == ["empty"]
    assert json.loads((tmp_path / "summary.json").read_text())["files"]["tagged"] == 2


def test_a_commit_cut_short_is_completed_and_an_uncommitted_run_dropped(tmp_path):
    out, staging = tmp_path / "out", tmp_path / "out" / outputs.STAGING
    for folder, text in ((out, "old"), (staging, "new")):
        (folder / "playlists").mkdir(parents=True)
        for name in ("tags.csv", "summary.json", "playlists/rock.m3u8"):
            (folder / name).write_text(text)
    (out / "playlists" / "jazz.m3u8").write_text("old")  # no jazz in the new results

    outputs.finish(str(out))  # never committed: a run killed before its results replaced these
    assert not staging.exists() and (out / "tags.csv").read_text() == "old"

    (staging / "playlists").mkdir(parents=True)
    for name in ("tags.csv", "summary.json", "playlists/rock.m3u8"):
        (staging / name).write_text("new")
    names = ["playlists/rock.m3u8", "summary.json", "tags.csv"]
    (staging / outputs.COMMIT_FILE).write_text(json.dumps(names))
    os.replace(staging / "tags.csv", out / "tags.csv")  # killed after moving one file
    outputs.finish(str(out))
    assert {n: (out / n).read_text() for n in names} == dict.fromkeys(names, "new")
    assert not staging.exists() and not (out / "playlists" / "jazz.m3u8").exists()
