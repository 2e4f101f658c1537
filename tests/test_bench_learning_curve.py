"""bench.learning_curve: the nested draws of training tracks, the subset of a Transform output's train
split, the summary and its slope (fast: no training; ``python -m bench.learning_curve`` trains on real clips)."""
from __future__ import annotations

import argparse
import json
import os

import pytest
import tensorflow as tf

from bench import learning_curve
from config.settings import PipelineConfig

TRACKS = {"blues": [f"blues.{n:05d}" for n in range(20)], "disco": [f"disco.{n:05d}" for n in range(7)],
          "pop": ["pop.00001"]}


def test_a_draw_keeps_a_rounded_share_of_every_genre_and_at_least_one_track():
    kept = learning_curve.draw_tracks(TRACKS, 0.25, draw=0)
    by_genre = {g: [t for t in kept if t.startswith(g)] for g in TRACKS}
    assert {g: len(ts) for g, ts in by_genre.items()} == {"blues": 5, "disco": 2, "pop": 1}
    assert learning_curve.draw_tracks(TRACKS, 1.0, draw=2) == {t for ts in TRACKS.values() for t in ts}


def test_draws_are_nested_across_fractions_and_differ_between_draws():
    quarter, half = (learning_curve.draw_tracks(TRACKS, f, draw=1) for f in (0.25, 0.5))
    assert quarter < half  # the tracks of the smaller fraction are among the larger one's
    assert learning_curve.draw_tracks(TRACKS, 0.5, draw=1) == half  # a draw is repeatable
    others = [learning_curve.draw_tracks(TRACKS, 0.5, draw=d) for d in (0, 2, 3)]
    assert any(o != half for o in others)


@pytest.mark.parametrize("text", ["0", "1.5", "a,b", "", "-0.5,1"])
def test_fractions_out_of_range_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        learning_curve.fraction_list(text)


def test_fractions_are_sorted_without_repeats():
    assert learning_curve.fraction_list("1,0.25,0.5,0.25") == [0.25, 0.5, 1.0]


def _record(track: str, label: int) -> bytes:
    feature = {"track_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[track.encode()])),
               "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_the_subset_keeps_only_the_drawn_tracks_of_train_and_links_the_other_splits(tmp_path):
    examples = tmp_path / "examples"
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for split, tracks in {"train": ["blues.00000", "blues.00001", "pop.00001"], "eval": ["blues.00009"],
                          "test": ["pop.00004"]}.items():
        (examples / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(examples / f"Split-{split}" / "data.gz"), options) as writer:
            for track in tracks:
                for _segment in range(3):
                    writer.write(_record(track, 0 if track.startswith("blues") else 7))
    genres = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
    assert learning_curve.read_train_tracks(str(examples), genres) == {
        "blues": ["blues.00000", "blues.00001"], "pop": ["pop.00001"]}

    folder = tmp_path / "subset"
    folder.mkdir()
    learning_curve.subset_examples(str(examples), {"blues.00001", "pop.00001"}, str(folder))
    kept = [tf.train.Example.FromString(r.numpy()).features.feature["track_id"].bytes_list.value[0].decode()
            for r in tf.data.TFRecordDataset(tf.io.gfile.glob(str(folder / "Split-train" / "*")), "GZIP")]
    assert sorted(kept) == ["blues.00001"] * 3 + ["pop.00001"] * 3
    for split in ("eval", "test"):
        assert os.path.realpath(folder / f"Split-{split}") == str(examples / f"Split-{split}")


def _run(fraction: float, clips: int, eval_clip: float, test_clip: float) -> dict:
    return {"fraction": fraction, "train_clips": clips,
            "eval": {"clip_accuracy": eval_clip, "segment_accuracy": eval_clip - 0.1},
            "test": {"clip_accuracy": test_clip, "segment_accuracy": test_clip - 0.1}}


def test_the_summary_averages_each_fraction_and_gives_the_change_between_fractions():
    rows = learning_curve.summarise([_run(0.5, 94, 0.60, 0.50), _run(0.5, 94, 0.70, 0.60),
                                     _run(1.0, 188, 0.75, 0.70), _run(0.25, 47, 0.50, 0.40)])
    assert [r["fraction"] for r in rows] == [0.25, 0.5, 1.0]
    half = rows[1]
    assert half["runs"] == 2 and half["eval_clip_accuracy"] == pytest.approx(0.65)
    assert half["test_clip_accuracy_range"] == (0.5, 0.6)
    steps = learning_curve.gains(rows, "test_clip_accuracy")
    assert [(a, b) for a, b, _ in steps] == [(47, 94), (94, 188)]
    assert [g for _, _, g in steps] == pytest.approx([0.15, 0.15])
    assert learning_curve.gains(rows[:1], "test_clip_accuracy") == []
    text = learning_curve.table(rows)
    assert "| 0.5 | 94 | 2 | 0.650 (0.600-0.700) | 0.550 (0.500-0.600) |" in text
    assert "- From 94 to 188 training clips: eval clip +0.100, eval segment +0.100, test clip +0.150" in text


def test_the_plot_is_a_png(tmp_path):
    rows = learning_curve.summarise([_run(0.5, 94, 0.6, 0.5), _run(1.0, 188, 0.7, 0.6)])
    path = learning_curve.plot(rows, "musicnn", str(tmp_path / "curve.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flags, message", [(["--draws", "0"], "'0': give a whole number of at least 1"),
                                            (["--fractions", "0,1"], "give fractions above 0 and at most 1")])
def test_bad_flags_are_refused_before_anything_runs(capsys, flags, message):
    with pytest.raises(SystemExit) as refused:
        learning_curve.main(["--output-dir", "unused", "--model", "musicnn", *flags])
    assert refused.value.code == 2 and message in capsys.readouterr().err


def test_a_run_trained_again_replaces_its_earlier_line(tmp_path):
    path = tmp_path / learning_curve.RESULTS
    lines = [{"model": "cnn", "transform": "T", "fraction": 0.5, "draw": 0, "mark": "first"},
             {"model": "cnn", "transform": "T", "fraction": 0.5, "draw": 1, "mark": "other draw"},
             {"model": "cnn", "transform": "other output", "fraction": 0.5, "draw": 0, "mark": "other output"},
             {"model": "lstm", "transform": "T", "fraction": 0.5, "draw": 0, "mark": "other model"},
             {"model": "cnn", "transform": "T", "fraction": 0.5, "draw": 0, "mark": "again"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    marks = sorted(r["mark"] for r in learning_curve.read_results(path, "cnn", "T"))
    assert marks == ["again", "other draw"]


def _spec(kind: str, shape: list[int]) -> dict:
    return {kind: tf.io.FixedLenFeature(shape, tf.float32), "label": tf.io.FixedLenFeature([], tf.int64),
            "track_id": tf.io.FixedLenFeature([], tf.string)}


@pytest.mark.parametrize("model, kind, shape", [("musicnn", "log_mel", [187, 96]), ("cnn", "log_mel", [130, 128]),
                                                ("ann", "summary", [57])])
def test_a_transform_output_of_the_family_s_own_features_is_taken(tmp_path, model, kind, shape):
    learning_curve.check_features(_spec(kind, shape), PipelineConfig().with_model(model), tmp_path)


@pytest.mark.parametrize("model, kind, shape", [("cnn", "log_mel", [187, 96]), ("musicnn", "log_mel", [130, 128]),
                                                ("cnn", "summary", [57])])
def test_a_transform_output_of_another_family_s_features_is_refused_with_the_fix(tmp_path, model, kind, shape):
    with pytest.raises(SystemExit) as refused:
        learning_curve.check_features(_spec(kind, shape), PipelineConfig().with_model(model), tmp_path)
    message = str(refused.value)
    assert f"{tmp_path} holds a Transform output of other features ({kind} {shape})" in message
    assert f"Give --output-dir a pipeline root of --model {model}, or a new folder" in message
