"""Choosing the strategy (models/distribute.py) and the input rules that follow from it (models/training.py).

Runs on the default device: the strategies over several devices or workers are trained in
tests/test_distributed_training.py, each in processes of their own.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from config.settings import PROJECT_ROOT
from models import distribute, training
from tests.testkit.training_inputs import tiny_shards, train_config


def tf_config(workers: int, kind: str = "worker", index: int = 0, chief: bool = False) -> str:
    cluster = {"worker": [f"host{i}:2222" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["chief:2222"]
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


def test_no_tf_config_is_one_worker_the_chief():
    assert distribute.cluster_from_tf_config("") == distribute.Cluster(1, 0, True)


@pytest.mark.parametrize("config,expected", [
    (tf_config(2, index=0), distribute.Cluster(2, 0, True)),
    (tf_config(2, index=1), distribute.Cluster(2, 1, False)),
    (tf_config(2, index=0, chief=True), distribute.Cluster(3, 1, False)),
    (tf_config(2, kind="chief", chief=True), distribute.Cluster(3, 0, True)),
])
def test_each_task_knows_its_worker_index_and_whether_it_is_the_chief(config, expected):
    assert distribute.cluster_from_tf_config(config) == expected


@pytest.mark.parametrize("text,message", [("{not json", "not valid JSON"),
                                          (tf_config(2, kind="ps"), "chief and worker tasks only")])
def test_a_bad_tf_config_is_refused_with_the_fix(text, message):
    with pytest.raises(ValueError, match=message):
        distribute.cluster_from_tf_config(text)


def test_auto_picks_multi_worker_for_a_cluster_and_one_on_a_cpu_machine(monkeypatch):
    monkeypatch.delenv(distribute.TPU_ENV, raising=False)
    assert distribute.resolve_name("auto", distribute.cluster_from_tf_config(tf_config(2))) == "multi-worker"
    assert distribute.resolve_name("auto", distribute.Cluster()) == ("mirrored" if len(
        tf.config.list_logical_devices("GPU")) >= 2 else "one")
    assert distribute.resolve_name("mirrored", distribute.Cluster()) == "mirrored"
    with pytest.raises(ValueError, match="Unknown strategy"):
        distribute.resolve_name("horovod", distribute.Cluster())


def test_the_default_plan_is_the_default_strategy_and_says_so():
    plan = distribute.make_plan("one")
    assert plan.strategy is tf.distribute.get_strategy() and plan.replicas == 1 and not plan.static_shapes
    assert plan.describe(32) == "strategy one: 1 replica(s) on default device; global batch 32 = 32 per replica x 1"


def test_a_tpu_that_is_not_there_is_one_clear_error(monkeypatch):
    monkeypatch.delenv(distribute.TPU_ENV, raising=False)
    with pytest.raises(ValueError, match="--strategy tpu: no TPU found .*choose another --strategy"):
        distribute.make_plan("tpu")


def test_the_global_batch_needs_an_example_per_replica():
    eight_replicas = SimpleNamespace(num_replicas_in_sync=8)
    plan = distribute.Plan("mirrored", eight_replicas, distribute.Cluster(), False, ())
    assert plan.per_replica_batch(32) == 4
    with pytest.raises(ValueError, match="--batch-size >= 8"):
        plan.per_replica_batch(4)


def test_precision_sets_the_keras_policy():
    try:
        distribute.set_precision("bfloat16")
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        with pytest.raises(ValueError, match="Unknown mixed precision"):
            distribute.set_precision("int8")
    finally:
        distribute.set_precision("none")
    assert keras.mixed_precision.global_policy().name == "float32"


# ----- the input under a strategy --------------------------------------------------------------
TINY_SHAPE = (32, 16)  # (frames, bins) of the tiny shards' features


@pytest.fixture
def split(tmp_path):
    """10 segments of 3 tracks in one canonical shard set."""
    config = train_config("cnn", batch_size=4)
    return (config, *tiny_shards(tmp_path, "pop", 5, 2, config.features.kind, TINY_SHAPE))


def test_training_batches_carry_no_strings_and_are_not_auto_sharded(split):
    config, tft_output, shards = split
    ds = training.make_dataset(shards, tft_output, config, training=True)
    assert all(spec.dtype != tf.string for spec in tf.nest.flatten(ds.element_spec))
    assert ds.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.OFF
    scored = training.make_dataset(shards, tft_output, config, training=False, with_track_ids=True)
    assert scored.element_spec[2].dtype == tf.string  # track ids only where clips are scored, on the host


def test_static_shapes_drop_the_partial_training_batch_only(split):
    config, tft_output, shards = split
    sizes = [len(y) for _, y in training.make_dataset(shards, tft_output, config, training=True,
                                                      static_shapes=True)]
    assert sizes == [4, 4]  # 10 examples: the partial batch of 2 is dropped
    assert [len(y) for _, y in training.make_dataset(shards, tft_output, config, training=False,
                                                      static_shapes=True)] == [4, 4, 2]
    assert [len(y) for _, y in training.make_dataset(shards, tft_output, config, training=True)] == [4, 4, 2]


def test_a_split_smaller_than_one_global_batch_is_refused_under_static_shapes(split):
    config, tft_output, shards = split
    big = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=16))
    with pytest.raises(ValueError, match=r"holds 10 examples, fewer than one global batch of 16 .*at most 10"):
        training.make_dataset(shards, tft_output, big, training=True, static_shapes=True)
    training.make_dataset(shards, tft_output, big, training=True)  # dynamic shapes: one partial batch trains


def test_even_steps_give_every_worker_full_batches_for_one_pass(split):
    config, tft_output, shards = split
    even = training.EvenSteps.of(shards, shards, 4)
    assert (even.train, even.eval) == (3, 3)
    fed = even.feed(training.make_dataset(shards, tft_output, config, training=False))
    assert [len(y) for _, y in fed.take(5)] == [4] * 5


def test_a_float32_copy_has_the_weights_and_float32_layers():
    try:
        distribute.set_precision("bfloat16")
        inputs = keras.Input((6,))
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", dtype="float32")(
            keras.layers.Dense(4)(inputs)), name="tiny")
    finally:
        distribute.set_precision("none")
    assert model.layers[1].compute_dtype == "bfloat16"
    copy = training.copy_model(model, float32=True)
    assert {layer.compute_dtype for layer in copy.layers[1:]} == {"float32"} and copy.name == "tiny"
    for a, b in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----- the flags --------------------------------------------------------------------------------
def test_the_flags_reach_the_training_config_and_a_wrong_value_is_refused(capsys):
    import local_runner
    from pipeline.flags import config_from_args

    train = config_from_args(local_runner.parse_args(["--strategy", "mirrored", "--mixed-precision", "bfloat16"])).train
    assert (train.strategy, train.mixed_precision) == ("mirrored", "bfloat16")
    default = config_from_args(local_runner.parse_args([])).train
    assert (default.strategy, default.mixed_precision) == ("one", "none")
    with pytest.raises(SystemExit) as exit_info:
        local_runner.parse_args(["--strategy", "horovod"])
    assert exit_info.value.code == 2 and "invalid choice: 'horovod'" in capsys.readouterr().err


def test_the_flags_import_no_tensorflow():
    code = "import sys, pipeline.flags; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT).stdout
    assert out.strip() == "False"  # --help and the early refusals stay fast


def test_float32_never_has_a_precision_problem():
    assert distribute.precision_problem("none") is None
    distribute.require_precision("none")


class _ModelBuilt(Exception):
    """Raised in place of building the model: the Trainer got past its precision check."""


@pytest.mark.parametrize("answer", [None, "forced: no bfloat16 convolution here"])
def test_the_trainer_acts_on_the_probes_answer_before_any_model(answer, split, tmp_path, monkeypatch):
    """Whatever the probe answers on this CPU, forced here each way: a problem is one paragraph naming the fix,
    raised before a model is built; no problem lets the Trainer go on to build the model in that precision."""
    from config.errors import UserError

    config, tft_output, shards = split
    config.train = dataclasses.replace(config.train, mixed_precision="bfloat16")
    monkeypatch.setattr(distribute, "precision_problem", lambda precision: answer)
    # The tiny shards' stand-in Transform output has no transform graph to read Transform's statistics from.
    bins = TINY_SHAPE[1]
    config.features = dataclasses.replace(config.features, n_mels=bins)
    monkeypatch.setattr(training.preprocessing, "normalisation_stats", lambda *args: SimpleNamespace(
        mean=np.zeros(bins, np.float32), std=np.ones(bins, np.float32)))

    def build_model(*args, **kwargs):
        raise _ModelBuilt(keras.mixed_precision.global_policy().name)
    monkeypatch.setattr(training.registry, "build_model", build_model)
    try:
        with pytest.raises(UserError if answer else _ModelBuilt) as raised:
            training.train_model(config, tft_output, shards, shards, str(tmp_path))
    finally:
        distribute.set_precision("none")
    if answer:
        paragraph = raised.value.paragraph()
        assert "This machine cannot train in bfloat16" in paragraph and answer in paragraph
        assert "Fix: train without --mixed-precision" in paragraph and "--mixed-precision" in raised.value.where
    else:
        assert str(raised.value) == "mixed_bfloat16"  # the policy was set, then the model was to be built


def test_the_probe_answers_as_a_training_step_does_with_onednn_capped_at_avx2():
    """What oneDNN can do under ``ONEDNN_MAX_CPU_ISA=AVX2`` depends on the CPU (an AVX-512 Xeon refuses bfloat16
    convolutions there, an AVX2-only AMD EPYC runs them), so the probe's answer is not asserted: it must agree
    with a Keras training step of a small convolutional model in that precision, in the same fresh process (the
    cap is read when TensorFlow loads)."""
    code = """
import json
import numpy as np
import tensorflow as tf
import tf_keras as keras
from models import distribute

def trains(precision):
    distribute.set_precision(precision)
    try:
        inputs = keras.Input((8, 8, 2))
        hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, padding="same")(inputs))
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", dtype="float32")(hidden))
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.train_on_batch(np.ones((2, 8, 8, 2), np.float32), np.array([0, 1]))
        return True
    except tf.errors.OpError:
        return False
    finally:
        distribute.set_precision("none")

print(json.dumps({p: [distribute.precision_problem(p), trains(p)] for p in ("none", "bfloat16", "float16")}))
"""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT)
    answers = json.loads(out.stdout.strip().splitlines()[-1])
    assert answers["none"] == [None, True]
    for precision in ("bfloat16", "float16"):
        problem, trained = answers[precision]
        assert (problem is None) == trained, (precision, answers)
