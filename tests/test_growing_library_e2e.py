"""A library that grows, through `local_runner.main`: the second run works on what changed, and its live data are
what a `--full` rebuild makes.

A tagged FLAC library (`--labels tags`, 3 genres x 8 tracks of 3 s, musicnn) is run once; then 10 tracks are added,
one file's audio is replaced, one file's genre tag is changed and one file is removed, and the pipeline runs again
into the same output folder. Ingestion decodes exactly the 12 new and changed files into span 2; Transform analyses
and transforms only span 2 (TFT's cache holds span 1's share); the frozen body embeds only their segments; the
Trainer warm-starts from the first run's model. What the Trainer reads (train and eval) and what the gate scores
(test) equal a `--full` rebuild's, record for record, with the same statistics and analyzer outputs, and the warm
model scores on the eval split at least as well as the rebuild's cold one, less one clip.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

import local_runner
from components import span_views
from components.audio_example_gen import spans
from config.settings import SPLITS, PipelineConfig
from models import preprocessing, training
from pipeline.run_record import RunRecord, open_store
from synthetic.generator import render_track
from tests.testkit.library_files import encode, tag

RATE = 22050
GENRES = ("Blues", "Jazz", "Rock")
MODEL = "musicnn"
# Hash split, so that a track's split is a rebuild's; these ratios give every genre a test track, which the gate needs
# to bless the first run's model: the champion the second run starts from.
FLAGS = ["--labels", "tags", "--genres-from-data", "--split", "hash", "--split-ratios", "0.6,0.2,0.2",
         "--group-by", "track", "--model", MODEL,
         "--epochs", "10", "--heads", "2", "--min-accuracy", "0", "--min-clip-accuracy", "0", "--min-test-clips", "1",
         "--max-accuracy-drop", "1", "--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory"]
ADDED = {"Blues": (9, 10, 11, 12), "Jazz": (9, 10, 11), "Rock": (9, 10, 11)}


def track(root: Path, genre: str, number: int, seconds: float = 3.0, variant: int = 0) -> Path:
    path = encode(root / f"{genre} Band" / "Album" / f"{number:02d} Song.flac",
                  render_track(genre.lower(), number + 100 * variant, seconds=seconds, sample_rate=RATE), RATE, "flac")
    tag(path, genre=genre, artist=f"{genre} Band", album="Album")
    return path


def run(root: Path, out: Path, *extra: str) -> dict:
    return local_runner.main(["--data-root", str(root), "--output-dir", str(out), *FLAGS, *extra])


def outputs(out: Path, summary: dict) -> dict[str, str]:
    """This run's artifact URIs: examples, transform graph, transformed examples."""
    config = PipelineConfig(paths=dataclasses.replace(PipelineConfig().paths, output_dir=str(out)))
    record = RunRecord(open_store(config.metadata_path), summary["run_id"])
    return {name: record.output(component, kind).uri for name, (component, kind) in {
        "examples": ("AudioExampleGen", "Examples"), "graph": ("Transform", "TransformGraph"),
        "transformed": ("Transform", "Examples"), "statistics": ("StatisticsGen", "ExampleStatistics")}.items()}


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    root, out = tmp_path_factory.mktemp("library"), tmp_path_factory.mktemp("out")
    for genre in GENRES:
        for number in range(1, 9):
            track(root, genre, number)
    first = run(root, out)
    cache = out / "pipeline_root" / "Transform" / "analyzer_cache"
    cached_before = set(os.listdir(cache))
    for genre, numbers in ADDED.items():
        for number in numbers:
            track(root, genre, number)  # added
    track(root, "Blues", 2, seconds=6.0, variant=1)  # other audio, twice as long, at the same path
    tag(root / "Jazz Band" / "Album" / "03 Song.flac", genre="Rock")  # re-labelled by its tag
    (root / "Rock Band" / "Album" / "04 Song.flac").unlink()  # removed
    second = run(root, out)
    cached_after = set(os.listdir(cache))
    full = run(root, out, "--full", "--until", "train")
    return {"first": first, "second": second, "full": full, "out": out, "new_cache": cached_after - cached_before,
            "uris": {name: outputs(out, s) for name, s in (("second", second), ("full", full))}}


def test_the_second_run_decodes_only_the_new_and_changed_files(grown):
    with open(os.path.join(grown["second"]["data"]["report"], "summary.json")) as f:
        span = json.load(f)["span"]
    assert (span["span"], span["built_on"]) == (2, 1)
    assert {k: span[k] for k in ("new", "changed", "removed", "unchanged", "decoded")} == {
        "new": 10, "changed": 2, "removed": 1, "unchanged": 21, "decoded": 12}, span


def test_transform_analyses_and_transforms_only_the_new_span(grown):
    second = grown["uris"]["second"]
    examples_id = os.path.basename(second["examples"])
    # TFT's cache gained the new span's datasets (its train and retired splits) and nothing else.
    assert grown["new_cache"] and all(f"examples-{examples_id}-Split-" in name for name in grown["new_cache"])
    tombstones = bool(spans.read_chain(second["examples"]).dropped(1, "train"))  # span 2's retired split
    assert tombstones and len(grown["new_cache"]) == 2
    for split in SPLITS:  # only span 2's records were transformed in this run
        names = os.listdir(os.path.join(second["transformed"], f"Split-{split}"))
        assert names and all(name.startswith("span-00002-") for name in names), names


def live_records(examples_uri: str, split: str) -> set[tuple[str, int, str]]:
    """(track id, segment index, audio digest) of the live records of a split, as the gate reads them."""
    from tfx.types import standard_artifacts
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    spec = {k: tf.io.FixedLenFeature([], t) for k, t in
            (("track_id", tf.string), ("segment_index", tf.int64), ("audio", tf.string))}
    found = set()
    for view in span_views.split_views(examples, split, str(Path(examples_uri) / ".views")):
        files = tf.io.gfile.glob(os.path.join(view.uri, f"Split-{split}", "*"))
        for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(256):
            parsed = tf.io.parse_example(batch, spec)
            found.update((t.decode(), int(i), hashlib.sha1(a).hexdigest()) for t, i, a in zip(
                parsed["track_id"].numpy(), parsed["segment_index"].numpy(), parsed["audio"].numpy()))
    return found


def test_the_live_data_equal_a_full_rebuild(grown):
    second, full = grown["uris"]["second"], grown["uris"]["full"]
    index = {name: {r["track_id"]: (r["split"], r["segments"]) for r in spans.read_index(uris["examples"])
                    if r["status"] == "ingested"} for name, uris in (("second", second), ("full", full))}
    assert index["second"] == index["full"] and len(index["full"]) == 33
    for split in SPLITS:  # record for record, audio included: no retired record is read
        got = live_records(second["examples"], split)
        assert got == live_records(full["examples"], split), split
        assert not any(t.startswith("Rock Band/Album/04 Song") for t, _, _ in got)
    changed = "Blues Band/Album/02 Song"
    assert sum(t == changed for split in SPLITS for t, _, _ in live_records(second["examples"], split)) == 2

    # Transform's analyzers: the per-bin mean and variance of the live data, span by span or in one go.
    config = PipelineConfig().with_model(MODEL)
    stats = [preprocessing.zscored_stats(tft.TFTransformOutput(uris["graph"]), config) for uris in (second, full)]
    for kind in stats[1]:
        np.testing.assert_allclose(stats[0][kind].mean, stats[1][kind].mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stats[0][kind].std ** 2, stats[1][kind].std ** 2, rtol=1e-5)


def test_the_statistics_of_the_live_data_are_the_rebuilds(grown, tmp_path):
    """TFDV's statistics of the live train records (every span, retired tracks left out) against the rebuild's
    StatisticsGen: the same examples, the same numbers."""
    import tensorflow_data_validation as tfdv
    from tfx.types import standard_artifacts
    examples = standard_artifacts.Examples()
    examples.uri = grown["uris"]["second"]["examples"]
    live = tmp_path / "live-train.tfrecord"
    with tf.io.TFRecordWriter(str(live)) as writer:
        for view in span_views.split_views(examples, "train", str(tmp_path / "views")):
            files = tf.io.gfile.glob(os.path.join(view.uri, "Split-train", "*"))
            for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
                writer.write(record.numpy())
    numeric = ("label", "segment_index", "num_samples", "sample_rate")
    found = {}
    for name, stats in (("live", tfdv.generate_statistics_from_tfrecord(str(live))), ("rebuild", tfdv.load_stats_binary(
            os.path.join(grown["uris"]["full"]["statistics"], "Split-train", "FeatureStats.pb")))):
        dataset = stats.datasets[0]
        found[name] = {"examples": dataset.num_examples, **{
            f.path.step[0]: (f.num_stats.mean, f.num_stats.std_dev, f.num_stats.min, f.num_stats.max)
            for f in dataset.features if f.path.step[0] in numeric}}
    assert found["live"]["examples"] == found["rebuild"]["examples"] > 0
    for feature in numeric:
        np.testing.assert_allclose(found["live"][feature], found["rebuild"][feature], rtol=1e-6, err_msg=feature)


def test_the_trainer_reads_what_a_rebuild_gives_it(grown, tmp_path):
    """Span 1's files, normalised with run 1's statistics and holding retired tracks, read as the rebuild's."""
    config = PipelineConfig().with_model(MODEL)
    batches = {}
    for name in ("second", "full"):
        uris = grown["uris"][name]
        tft_output = tft.TFTransformOutput(uris["graph"])
        files = {split: os.path.join(uris["transformed"], f"Split-{split}", "*") for split in ("train", "eval")}
        shards = training.split_shards(tft_output, config, str(tmp_path / name), **files)
        batches[name] = [[(x.numpy(), y.numpy(), t.numpy()) for x, y, t in training.make_dataset(
            shards[split], tft_output, config, training=False, with_track_ids=True)] for split in ("train", "eval")]
    for got, want in zip(*batches.values()):
        assert len(got) == len(want)
        for (x, y, t), (x_full, y_full, t_full) in zip(got, want):
            np.testing.assert_array_equal(t, t_full)
            np.testing.assert_array_equal(y, y_full)
            np.testing.assert_allclose(x, x_full, atol=1e-3)


def test_the_frozen_body_embeds_only_the_new_and_changed_tracks(grown):
    decoded = [r for r in spans.read_index(grown["uris"]["second"]["examples"])
               if r["status"] == "ingested" and r["span"] == 2 and r["split"] in ("train", "eval")]
    new_segments = sum(r["segments"] + r.get("view_segments", 0) for r in decoded)
    assert new_segments and grown["second"]["embedded"].startswith(f"{new_segments:,} of "), grown["second"]["embedded"]
    for name in ("first", "full"):  # a first run and a rebuild (--full forgets the store) embed every segment
        embedded, used = grown[name]["embedded"].split(" of ")
        assert embedded == used, grown[name]["embedded"]


def test_the_warm_started_model_scores_as_well_as_a_cold_one(grown):
    assert grown["second"]["warm_start"].startswith("warm start from the champion"), grown["second"]["warm_start"]
    assert grown["full"]["warm_start"].startswith("cold start"), grown["full"]["warm_start"]
    client = mlflow.tracking.MlflowClient(grown["second"]["mlflow_tracking_uri"])
    warm, cold = (client.get_run(grown[name]["mlflow_run_id"]).data.metrics for name in ("second", "full"))
    assert warm["eval_clips"] == cold["eval_clips"] > 0
    assert warm["eval_clip_accuracy"] * warm["eval_clips"] >= cold["eval_clip_accuracy"] * cold["eval_clips"] - 1
