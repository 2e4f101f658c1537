"""bench.training's measuring and reporting code on a toy dataset and model (fast, synthetic)."""
from __future__ import annotations


import numpy as np
import tensorflow as tf
import tf_keras as keras

from bench import training as bench


def toy_dataset(n: int = 50, batch: int = 8) -> tf.data.Dataset:
    x = np.random.default_rng(0).normal(size=(n, 6, 4)).astype("float32")
    y = tf.one_hot(np.arange(n) % 3, 3)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def test_input_pipeline_counts_every_segment_of_each_epoch():
    warmup, timed = bench.time_input_pipeline(toy_dataset, epochs=3)
    assert warmup.segments == 50  # the partial last batch counts too
    assert timed.segments == 150
    assert timed.seconds > 0 and timed.per_second > 0


def test_fit_times_full_epochs_after_warmup():
    model = keras.Sequential([keras.Input((6, 4)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    warmup, rate = bench.time_fit(model, toy_dataset(), segments_per_epoch=50, epochs=2, warmup_steps=2)
    assert warmup > 0
    assert rate.segments == 100 and rate.seconds > 0


def test_rows_report_ratio_and_goal():
    result = {"model": "cnn", "kind": "log_mel", "shape": (130, 128), "sample_rate": 22050, "params": 1000,
              "input": bench.Rate(1000, 1.0),
              "fits": [{"label": "", "rate": bench.Rate(100, 1.0), "trainable": 900},
                       {"label": " head", "rate": bench.Rate(5000, 1.0), "trainable": 10, "input": None,
                        "input_label": "in-memory embeddings"},
                       {"label": " fine-tuning", "rate": bench.Rate(500, 1.0), "trainable": 900}]}
    rows, ratios = bench.format_rows([result])
    assert ratios == [10.0, 2.0]  # the head reads no tf.data input: no ratio
    lines = rows.splitlines()
    assert "(>= 3x: met)" in lines[0]
    assert "in-memory embeddings" in lines[1] and lines[1].endswith("| - |")
    assert "NOT met" in lines[2]


def test_make_command_repeats_the_run():
    assert bench.make_command("bench-training", []) == "make bench-training"
    assert bench.make_command("bench-training", ["--epochs", "1"]) == 'make bench-training ARGS="--epochs 1"'
