"""bench.training's measuring and reporting code on a toy dataset and model (fast, synthetic)."""
from __future__ import annotations

import json

import numpy as np
import pytest
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


def test_cores_needed_rounds_up_and_refuses_no_rate():
    assert bench.cores_needed(1000, 4000) == 1
    assert bench.cores_needed(10_000, 4000) == 3
    assert bench.cores_needed(8000, 4000) == 2
    with pytest.raises(ValueError):
        bench.cores_needed(1000, 0)


def test_child_command_pins_cores_and_sets_or_clears_the_isa_cap(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")  # inherited caps never leak into an uncapped child
    source = bench.Source("cnn", "/graph", ("/s/0",), 100, 32, 1, 1)
    argv, env = bench.child_command(bench.Probe("fit", "explicit", None, 2), source, {3, 5, 7})
    assert argv[:3] == ["taskset", "-c", "3,5"]
    assert "ONEDNN_MAX_CPU_ISA" not in env
    payload = json.loads(argv[argv.index("--probe") + 1])
    assert payload["probe"]["what"] == "fit" and payload["source"]["shards"] == ["/s/0"]
    argv, env = bench.child_command(bench.Probe("model", isa="AVX2"), source, {0, 1})
    assert argv[0] != "taskset" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"


def test_pinning_more_cores_than_available_is_refused():
    with pytest.raises(SystemExit, match="may use 2 CPU"):
        bench.pinned_cpus(3, {0, 1})


def test_result_is_read_from_the_marked_line():
    out = f"noise\n{bench.RESULT_MARK}{json.dumps({'examples': 64, 'seconds': 2.0, 'steps': 2})}\n"
    result = bench.parse_result(out)
    assert bench.examples_per_second(result) == 32.0 and bench.ms_per_step(result) == 1000.0
    with pytest.raises(ValueError):
        bench.parse_result("no result here")


def _profile(scale: float) -> dict:
    def r(examples_per_s: float, steps: int = 10) -> dict:
        return {"examples": 320, "seconds": 320 / examples_per_s, "steps": steps}

    return {"parse": r(3200 * scale), "augment": r(1600 * scale), "model": r(320 * scale), "fit": r(160 * scale),
            "augment-ops": {"ops": {"random gain": 1.0 / scale, "augment_batch (all of the above)": 3.0 / scale}}}


def test_epoch_split_and_rows():
    split = bench.epoch_split(_profile(1.0), segments=320, steps=10)
    assert split == {"parse": 0.1, "augment": 0.2, "fit": 2.0, "model": 1.0}
    profile = {"uncapped, default threads": _profile(1.0), "oneDNN AVX2, default threads": _profile(0.5)}
    rows = bench.format_split_rows(profile, 320, 10).splitlines()
    assert rows[0] == "| uncapped, default threads | 2.00 | 1.00 (50%) | 0.10 | 0.10 | 1.00 (50%) |"
    assert rows[1].startswith("| oneDNN AVX2, default threads | 4.00 | 2.00 (50%)")
    assert bench.ratio_text(profile, "model", *profile) == "0.50"
    table = bench.format_setting_table("op", profile, {"random gain": "random gain"},
                                       lambda r, op: f"{r['augment-ops']['ops'][op]:.2f}").splitlines()
    assert table[0] == "| op | uncapped, default threads | oneDNN AVX2, default threads |"
    assert table[2] == "| random gain | 1.00 | 2.00 |"


def test_core_rows_give_the_smallest_rate_per_core():
    per_core = {1: {"augment": {"examples": 1000, "seconds": 1.0, "steps": 32},
                    "fit": {"examples": 100, "seconds": 1.0, "steps": 4}},
                2: {"augment": {"examples": 1600, "seconds": 1.0, "steps": 50},
                    "fit": {"examples": 150, "seconds": 1.0, "steps": 5}}}
    rows, smallest = bench.format_core_rows(per_core)
    assert smallest == 800.0  # 1600 / 2 cores
    assert rows.splitlines()[1].startswith("| 2 | **1,600** (1600 in 1.00 s) | **800** | 150.0")


def test_make_command_repeats_the_run():
    assert bench.make_command("bench-input", []) == "make bench-input"
    assert bench.make_command("bench-input", ["--epochs", "1"]) == 'make bench-input ARGS="--epochs 1"'
