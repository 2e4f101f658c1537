"""AudioExampleGen's Beam transform and executor on tiny synthetic collections (real DirectRunner)."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
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

from audio import groups
from audio.discovery import discover
from components.audio_example_gen import checks, executor, ingest, progress, quarantine
from components.audio_example_gen.conftest import IN_MEMORY, MULTI_PROCESSING, make_config, read_examples, run_executor
from components.audio_example_gen.executor import kept_report_dir
from components.audio_example_gen.plan import plan_tasks
from config.errors import UserError
from config.settings import SPLITS
from tests.testkit.audio_files import BAD_AND_ODD_FILES, HOSTILE_FILES, LONG_SECONDS, RATE, refused_as_root


@beam.ptransform_fn
def IngestAudio(pipeline, tasks, audio):  # noqa: N802 - Beam's naming
    """``{split: PCollection[bytes]}`` for each of SPLITS, plus ``files`` (records), of in-memory tasks."""
    outputs = (pipeline | "CreateFileTasks" >> beam.Create(tasks)
               | "DecodeToExamples" >> beam.ParDo(ingest.DecodeToExamples(audio)).with_outputs(ingest.FILES, *SPLITS))
    return {name: outputs[name] for name in (*SPLITS, ingest.FILES)}


SEGMENTS_PER_TRACK = 3  # 3.5 s synthetic tracks (3.0 s odd ones), 1 s segments, last partial dropped
GENRES = make_config().genres  # the default label set
BAD = {rel: outcome for rel, _, outcome in BAD_AND_ODD_FILES.values() if outcome != "ingested"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ----- the Beam transform alone, with Beam's testing utilities ------------------------------

def test_ingest_audio_transform_with_beam_testing_utilities(messy_root):
    config = make_config(protocol="hash")
    tasks = plan_tasks(discover(str(messy_root), "*/*"), config.split, config.genres)
    planned = {s: sorted(t.track_id for t in tasks if t.split == s and t.rel_path not in BAD) for s in SPLITS}
    expected_records = sorted((t.rel_path, BAD.get(t.rel_path, t.reason or "ingested")) for t in tasks)

    def track_ids(serialized: bytes) -> str:
        return tf.train.Example.FromString(serialized).features.feature["track_id"].bytes_list.value[0].decode()

    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        outputs = p | IngestAudio(tasks, config.audio)
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
    assert summary["files"] == {"discovered": good_tracks + len(BAD) + 1, "ingested": good_tracks,
                                "quarantined": len(BAD), "excluded": 1}  # rock/notes.txt
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
        assert r["source_path"].decode() == f"{r['track_id'].decode()}.wav"  # the genre folder included
        segment_indices[r["track_id"]].append(r["segment_index"])
    assert all(sorted(v) == list(range(SEGMENTS_PER_TRACK)) for v in segment_indices.values())
    # The resampled (44.1 kHz) and the stereo file are in, not quarantined.
    assert {b"classical/classical.00094", b"country/country.00095"} <= set(segment_indices)
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"


def test_16_bit_sources_reach_the_examples_bit_for_bit(messy_root, messy_run):
    _, _, written = messy_run
    row = next(r for rows in written.values() for r in rows
               if r["track_id"] == b"metal/metal.00001" and r["segment_index"] == 2)
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
    assert isinstance(error, checks.TooManyBadFiles) and isinstance(error, UserError)
    assert error.where.startswith("AudioExampleGen") and quarantine.QUARANTINE_FILE in error.where


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
        "train": ["blues/blues.00000", "rock/rock.00000"], "eval": ["blues/blues.00001"], "test": ["rock/rock.00001"]}
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    assert summary["excluded_counts"]["not in split lists"] == 2 * len(GENRES) - 4
    assert "jazz/jazz.00000.wav" in summary["excluded"]["not in split lists"]


# ----- hostile input: nothing on one file ends the run ------------------------------------------

HOSTILE_BAD = {rel: outcome for rel, _, outcome in HOSTILE_FILES.values() if outcome not in ("truncated", "cut")}
TRUNCATED = next(rel for rel, _, outcome in HOSTILE_FILES.values() if outcome == "truncated")
LONG = next(rel for rel, _, outcome in HOSTILE_FILES.values() if outcome == "cut")


@pytest.fixture(scope="module")
def hostile_run(hostile_root, tmp_path_factory):
    """One multi_processing run over good tracks and every hostile kind; returns the report and stdout."""
    out = tmp_path_factory.mktemp("hostile_run")
    stdout = io.StringIO()
    locked = hostile_root / next(rel for rel, _, outcome in HOSTILE_FILES.values() if outcome == "unreadable")
    with refused_as_root(locked), contextlib.redirect_stdout(stdout):
        examples, report, error = run_executor(hostile_root, make_config(max_bad_fraction=0.5), out,
                                               MULTI_PROCESSING)
    assert error is None, error
    return report, read_examples(examples.uri), stdout.getvalue()


def test_each_hostile_entry_is_quarantined_with_its_own_reason(hostile_run):
    report, _, _ = hostile_run
    entries = read_jsonl(Path(report.uri) / quarantine.QUARANTINE_FILE)
    assert {e["path"]: e["reason"] for e in entries} == HOSTILE_BAD
    assert all(e["detail"] for e in entries)
    details = {e["path"]: e["detail"] for e in entries}
    assert "1 Hz" in details["blues/blues.00085.wav"]
    assert "max_clip_seconds" in details["blues/blues.00086.wav"]
    assert "FIFO" in details["jazz/jazz.00083.wav"]


def test_all_good_tracks_are_ingested_next_to_hostile_ones(hostile_run):
    report, written, _ = hostile_run
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    good = 2 * len(GENRES) + 2  # synthetic tracks + the truncated and the ten-minute file
    assert summary["files"] == {"discovered": good + len(HOSTILE_BAD), "ingested": good,
                                "quarantined": len(HOSTILE_BAD), "excluded": 0}
    tracks = {row["track_id"].decode() for rows in written.values() for row in rows}
    assert len(tracks) == good


def test_truncated_file_is_ingested_and_flagged(hostile_run):
    report, written, _ = hostile_run
    records = {r["path"]: r for r in read_jsonl(Path(report.uri) / quarantine.FILES_FILE)}
    assert records[TRUNCATED]["status"] == "ingested" and records[TRUNCATED]["truncated"] is True
    assert records[TRUNCATED]["segments"] == 2  # 2.5 s of the promised 4 s, 1 s segments
    assert [path for path, r in records.items() if r["truncated"]] == [TRUNCATED]
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    assert summary["truncated"] == [TRUNCATED]
    assert any(TRUNCATED in w and "truncated" in w for w in summary["warnings"])


def test_a_ten_minute_track_is_cut_to_the_segment_cap_spread_over_it(hostile_run):
    report, written, _ = hostile_run
    cap = make_config().audio.max_segments_per_track
    indices = sorted(row["segment_index"] for rows in written.values() for row in rows
                     if row["track_id"] == b"metal/metal.00088")
    assert len(indices) == cap
    assert indices[0] == 0 and indices[-1] == int(LONG_SECONDS) - 1  # first and last second kept
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    assert summary["cut_tracks"] == [{"path": LONG, "segments_kept": cap, "segments_in_track": int(LONG_SECONDS)}]
    assert any(LONG in w and "--max-segments-per-track" in w for w in summary["warnings"])


def test_progress_lines_count_files_decoded_by_the_worker_processes(hostile_run):
    report, _, stdout = hostile_run
    total = 2 * len(GENRES) + len(HOSTILE_FILES)
    lines = [line for line in stdout.splitlines() if line.startswith("[ingest]")]
    assert lines and lines[-1] == f"[ingest] {total}/{total} files decoded"
    assert not (Path(report.uri) / progress.FOLDER).exists()  # markers cleaned up


def test_memory_error_in_the_decoder_is_one_files_quarantine_record(synthetic_root, tmp_path, monkeypatch):
    """The decoder raises MemoryError for one file, as a 40 KB WAV declaring 1 Hz once did (3.29 GiB).
    The allocation is simulated on purpose: the test does not try to allocate gigabytes.
    A fourth file vanishes between planning and decoding: its read error is its record too."""
    config = make_config()
    tasks = [t for t in plan_tasks(discover(str(synthetic_root), "*/*"), config.split, config.genres)
             if t.status == ingest.PENDING][:3]
    victim = tasks[1].rel_path
    vanished = dataclasses.replace(tasks[0], path=str(tmp_path / "gone.wav"), rel_path="blues/gone.wav")
    real_load = ingest._load

    def load(path, cfg):
        if path.endswith(victim):
            raise MemoryError("Unable to allocate 3.29 GiB for an array with shape (441000000,) and data type float64")
        return real_load(path, cfg)

    monkeypatch.setattr(ingest, "_load", load)  # the in_memory runner decodes in this process
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        outputs = p | IngestAudio([*tasks, vanished], config.audio)
        outcomes = outputs[ingest.FILES] | beam.Map(lambda r: (r["path"], r["status"], r["reason"],
                                                               r["detail"].split(":")[0]))
        assert_that(outcomes, equal_to([
            (t.rel_path, "quarantined", "decode_error", "MemoryError") if t.rel_path == victim
            else (t.rel_path, "ingested", "", "") for t in tasks]
            + [("blues/gone.wav", "quarantined", "unreadable", "cannot read the file")]))


# ----- checks after ingestion: empty splits fail with a UserError, a genre missing from train warns --

@pytest.fixture(scope="module")
def all_in_train_run(synthetic_root, tmp_path_factory):
    """Every track in train (ratios 1/0/0) and a label set with one genre that has no folder."""
    config = make_config(ratios=(1.0, 0.0, 0.0))
    config.genres = (*config.genres, "polka")
    return run_executor(synthetic_root, config, tmp_path_factory.mktemp("all_in_train"), IN_MEMORY)


def test_empty_eval_and_test_splits_are_a_user_error_after_the_report(all_in_train_run):
    _, report, error = all_in_train_run
    assert isinstance(error, checks.EmptySplits) and isinstance(error, UserError)
    message = str(error)
    assert "eval and test splits have no tracks" in message
    assert f"train {2 * len(GENRES)}, eval 0, test 0" in message
    assert "ratios 1/0/0" in message and "--split" in message and "Fix:" in message
    named = Path(kept_report_dir(report.uri, None)) / quarantine.SUMMARY_FILE  # kept where no runner deletes it
    assert str(named) in message
    assert named.exists() and (Path(report.uri) / quarantine.SUMMARY_FILE).exists()  # written before the error


def test_a_label_set_genre_missing_from_train_is_a_warning(all_in_train_run):
    _, report, _ = all_in_train_run
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    assert [w for w in summary["warnings"] if "no track of" in w] == [
        "The train split has no track of polka: the model cannot learn this genre. Add tracks, or leave it "
        "out of the label set (--genres)."]
    assert summary["genres"]["polka"]["train"]["tracks"] == 0



# ----- a music library: <genre>/<artist>/<album>/NN Title.wav, grouped splits ----------------------

LIBRARY_GENRES = ("rock", "jazz")
ARTISTS, ALBUMS, SONGS = 3, 2, 2  # per genre; every file name repeats across albums and artists


@pytest.fixture(scope="module")
def library_root(tmp_path_factory) -> Path:
    """24 distinct 2 s clips named ``01 Intro.wav``/``02 Outro.wav`` in every album folder."""
    root = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(7)
    for genre in LIBRARY_GENRES:
        for artist in range(ARTISTS):
            for album in range(ALBUMS):
                folder = root / genre / f"{genre.title()} Artist {artist}" / f"Album {album}"
                folder.mkdir(parents=True)
                for song, title in enumerate(("01 Intro", "02 Outro")[:SONGS]):
                    clip = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * np.arange(2 * RATE) / RATE)
                    sf.write(folder / f"{title}.wav", (clip + rng.normal(0, 0.01, clip.shape)).astype(np.float32),
                             RATE, subtype="PCM_16")
    return root


def library_config(group_by: str):
    config = make_config(protocol="stratified", group_by=group_by)
    config.genres = LIBRARY_GENRES
    return config


@pytest.mark.parametrize("group_by, group_of", [
    ("album", lambda track_id: track_id.split("/", 1)[1].rpartition("/")[0]),  # under the genre folder
    ("artist", lambda track_id: track_id.split("/")[1]),
])
def test_a_nested_library_is_ingested_whole_with_no_group_on_two_sides(library_root, tmp_path, group_by, group_of):
    examples, report, error = run_executor(library_root, library_config(group_by), tmp_path, IN_MEMORY)
    assert error is None, error
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    files = len(LIBRARY_GENRES) * ARTISTS * ALBUMS * SONGS
    assert summary["files"] == {"discovered": files, "ingested": files, "quarantined": 0, "excluded": 0}
    written = read_examples(examples.uri)
    sides: dict[str, set[str]] = defaultdict(set)
    tracks = set()
    for split, rows in written.items():
        for row in rows:
            track_id, source = row["track_id"].decode(), row["source_path"].decode()
            assert source == f"{track_id}.wav" and track_id.startswith(row["genre"].decode() + "/")
            tracks.add(source)
            sides[group_of(track_id)].add(split)
    assert len(tracks) == files  # same-named files in other folders are other tracks
    assert {g: s for g, s in sides.items() if len(s) > 1} == {}
    assert set().union(*sides.values()) == set(SPLITS)
    assert summary["group_by"] == group_by and summary["group_fallbacks"] == 0
    assert sum(summary["splits"][s]["groups"] for s in SPLITS) == len(sides)
    for genre in LIBRARY_GENRES:
        assert all(summary["genres"][genre][s]["groups"] >= 1 for s in SPLITS)
    assert "trk/seg/grp" in quarantine.format_table(summary)


def test_a_genre_of_one_album_is_refused_before_decoding_without_preflight(library_root, tmp_path):
    """Kubeflow runs the executor without preflight: the plan refuses, and nothing is written."""
    root = tmp_path / "one-album"
    shutil.copytree(library_root / "rock", root / "rock")
    album = Path("Jazz Artist 0", "Album 0")
    shutil.copytree(library_root / "jazz" / album, root / "jazz" / album)
    examples, _, error = run_executor(root, library_config("album"), tmp_path / "out", IN_MEMORY)
    assert isinstance(error, groups.TooFewGroups)
    assert "genre jazz (2 tracks in 1 album folder) has too few tracks" in error.paragraph()
    assert error.fix == "add tracks to jazz from album folders of their own."  # no regrouping fills three splits
    assert not Path(examples.uri).exists()


def test_the_plan_travels_as_task_files_not_in_the_beam_graph(tmp_path):
    tasks = [ingest.FileTask(f"/data/rock/A/B/{i:02d} Song.wav", f"rock/A/B/{i:02d} Song.wav", "rock",
                             f"A/B/{i:02d} Song", split="train", label=3, group="A/B") for i in range(2500)]
    pattern = executor.write_task_files(tasks, str(tmp_path / "tasks"))
    shards = sorted((tmp_path / "tasks").glob("tasks-*.jsonl"))
    assert len(shards) == 3 and all(len(s.read_text().splitlines()) in (833, 834) for s in shards)
    with test_pipeline.TestPipeline(options=PipelineOptions(IN_MEMORY)) as p:
        read = p | beam.io.ReadFromText(pattern) | beam.Map(executor._task)
        assert_that(read, equal_to(tasks))
