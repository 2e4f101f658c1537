"""AudioExampleGen's Beam transform and executor on tiny synthetic collections (real DirectRunner)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from components.audio_example_gen import ingest, quarantine
from components.audio_example_gen.conftest import (BAD_AND_ODD_FILES, IN_MEMORY, MULTI_PROCESSING, RATE,
                                                   make_config, read_examples, run_executor)
from components.audio_example_gen.discovery import discover
from components.audio_example_gen.plan import plan_tasks
from pipeline.config import GENRES, SPLITS

SEGMENTS_PER_TRACK = 3  # 3.5 s synthetic tracks (3.0 s odd ones), 1 s segments, last partial dropped
BAD = {rel: outcome for rel, _, outcome in BAD_AND_ODD_FILES.values() if outcome != "ingested"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ----- the Beam transform alone, with Beam's testing utilities ------------------------------

def test_ingest_audio_transform_with_beam_testing_utilities(messy_root):
    config = make_config(protocol="hash")
    tasks = plan_tasks(discover(str(messy_root), "*/*"), config.split)
    planned = {s: sorted(t.track_id for t in tasks if t.split == s and t.rel_path not in BAD) for s in SPLITS}
    expected_records = sorted((t.rel_path, BAD.get(t.rel_path, "ingested")) for t in tasks)

    def track_ids(serialized: bytes) -> str:
        return tf.train.Example.FromString(serialized).features.feature["track_id"].bytes_list.value[0].decode()

    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        outputs = p | ingest.IngestAudio(tasks, config.audio)
        for split in SPLITS:
            assert_that(outputs[split] | f"Ids[{split}]" >> beam.Map(track_ids),
                        equal_to([t for t in planned[split] for _ in range(SEGMENTS_PER_TRACK)]),
                        label=f"Check[{split}]")
        outcomes = outputs[ingest.FILES] | beam.Map(lambda r: (r["path"], r["reason"] or r["status"]))
        assert_that(outcomes, equal_to(expected_records), label="CheckRecords")


# ----- the executor, end to end, on a collection with every kind of bad file -----------------

@pytest.fixture(scope="module")
def messy_run(messy_root, tmp_path_factory):
    """One multi_processing run (real worker processes) with a tolerant bad-file limit."""
    out = tmp_path_factory.mktemp("messy_run")
    examples, report, error = run_executor(messy_root, make_config(max_bad_fraction=0.5), out, MULTI_PROCESSING)
    assert error is None, error
    return examples, report, read_examples(examples.uri)


def test_every_bad_kind_is_quarantined_with_its_reason(messy_run):
    _, report, _ = messy_run
    entries = read_jsonl(Path(report.uri) / quarantine.QUARANTINE_FILE)
    assert {e["path"]: e["reason"] for e in entries} == BAD
    assert all(e["detail"] for e in entries)
    corrupt = next(e for e in entries if e["path"] == "jazz/jazz.00054.wav")
    assert "libsndfile" in corrupt["detail"]


def test_summary_counts_files_tracks_segments_and_throughput(messy_run):
    _, report, written = messy_run
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    good_tracks = 2 * len(GENRES) + 2  # synthetic tracks + the resampled and the stereo file
    assert summary["files"] == {"discovered": good_tracks + len(BAD), "ingested": good_tracks,
                                "quarantined": len(BAD), "excluded": 0}
    assert summary["quarantine_reasons"] == {reason: 1 for reason in BAD.values()}
    assert summary["ignored_non_audio_files"] == ["rock/notes.txt"]
    assert sum(s["tracks"] for s in summary["splits"].values()) == good_tracks
    for split in SPLITS:
        assert summary["splits"][split]["segments"] == len(written[split])
        assert sum(g[split]["segments"] for g in summary["genres"].values()) == len(written[split])
    assert summary["genres"]["classical"]["train"]["tracks"] + summary["genres"]["classical"]["eval"]["tracks"] \
        + summary["genres"]["classical"]["test"]["tracks"] == 3
    assert summary["audio_seconds"] == pytest.approx(2 * len(GENRES) * 3.5 + 2 * 3.0, abs=0.01)
    assert summary["wall_seconds"] > 0 and summary["audio_seconds_per_wall_second"] > 0
    assert report.get_int_custom_property("num_quarantined") == len(BAD)


def test_no_track_id_appears_in_two_splits_of_the_written_examples(messy_run):
    _, _, written = messy_run
    splits_of = defaultdict(set)
    for split, rows in written.items():
        for row in rows:
            splits_of[row["track_id"]].add(split)
    assert len(splits_of) == 2 * len(GENRES) + 2
    assert {t: s for t, s in splits_of.items() if len(s) > 1} == {}


def test_written_examples_follow_the_contract(messy_run):
    examples, _, written = messy_run
    rows = [r for split_rows in written.values() for r in split_rows]
    assert set(rows[0]) == {"audio", "label", "genre", "track_id", "segment_index", "num_samples", "sample_rate",
                            "source_path"}
    segment_indices = defaultdict(list)
    for r in rows:
        assert len(r["audio"]) == 2 * RATE and r["num_samples"] == RATE and r["sample_rate"] == RATE
        assert GENRES[r["label"]] == r["genre"].decode()
        assert r["source_path"].decode() == f"{r['genre'].decode()}/{r['track_id'].decode()}.wav"
        segment_indices[r["track_id"]].append(r["segment_index"])
    assert all(sorted(v) == list(range(SEGMENTS_PER_TRACK)) for v in segment_indices.values())
    # The resampled (44.1 kHz) and the stereo file are in, not quarantined.
    assert {b"classical.00094", b"country.00095"} <= set(segment_indices)
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"


def test_16_bit_sources_reach_the_examples_bit_for_bit(messy_root, messy_run):
    _, _, written = messy_run
    row = next(r for rows in written.values() for r in rows
               if r["track_id"] == b"metal.00001" and r["segment_index"] == 2)
    original, rate = sf.read(messy_root / "metal" / "metal.00001.wav", dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(np.frombuffer(row["audio"], "<i2"), original[2 * RATE:3 * RATE])


def test_too_many_bad_files_fails_the_run_naming_them(messy_root, tmp_path):
    _, report, error = run_executor(messy_root, make_config(max_bad_fraction=0.05), tmp_path, IN_MEMORY)
    assert error is not None
    message = str(error)
    assert f"{len(BAD)} of {2 * len(GENRES) + 2 + len(BAD)} audio files" in message
    for rel in BAD:
        assert rel in message
    assert "--max-bad-fraction" in message
    assert (Path(report.uri) / quarantine.QUARANTINE_FILE).exists()  # the report is there to read


def test_fault_filtered_protocol_on_the_executor(synthetic_root, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("blues/blues.00000.wav\nrock/rock.00000.wav\n")
    (lists / "valid_filtered.txt").write_text("blues/blues.00001.wav\n")
    (lists / "test_filtered.txt").write_text("rock/rock.00001.wav\njazz/jazz.00054.wav\n")  # last: not on disk
    config = make_config(protocol="fault-filtered", split_dir=str(lists))
    examples, report, error = run_executor(synthetic_root, config, tmp_path / "out", IN_MEMORY)
    assert error is None
    written = read_examples(examples.uri)
    assert {s: sorted({r["track_id"].decode() for r in rows}) for s, rows in written.items()} == {
        "train": ["blues.00000", "rock.00000"], "eval": ["blues.00001"], "test": ["rock.00001"]}
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    assert summary["files"]["excluded"] == 2 * len(GENRES) - 4
    assert "jazz/jazz.00000.wav" in summary["excluded"]["not in split lists"]
