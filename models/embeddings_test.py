"""models/embeddings.py: a body's embeddings written to a file and read back in the dataset's order."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import embeddings


def test_embeddings_come_back_from_disk_in_order(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 5)).astype("f")
    y = np.eye(3, dtype="f")[np.arange(11) % 3]
    body = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    path = str(tmp_path / "run" / "train.tfrecord")
    back = embeddings.embed(body, tf.data.Dataset.from_tensor_slices((x, y)).batch(4), path)
    assert tf.io.gfile.exists(path)
    pairs = list(back.as_numpy_iterator())
    assert len(pairs) == 11 and back.element_spec[0].shape == (4,) and back.element_spec[1].shape == (3,)
    np.testing.assert_allclose(np.stack([e for e, _ in pairs]), body(x).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(np.stack([label for _, label in pairs]), y)
    assert len(list(back.shuffle(4, seed=1).batch(4))) == 3  # as the heads read it, on every epoch


def test_an_empty_dataset_is_refused(tmp_path):
    body = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    empty = tf.data.Dataset.from_tensor_slices((np.zeros((0, 5), "f"), np.zeros((0, 3), "f"))).batch(4)
    with pytest.raises(ValueError, match="No examples to embed"):
        embeddings.embed(body, empty, str(tmp_path / "e.tfrecord"))


def test_a_store_is_read_only_once_complete_and_holds_what_was_written(tmp_path):
    store = str(tmp_path / "store")
    writer = embeddings.StoreWriter(store)
    rng = np.random.default_rng(1)
    batches = {split: [(rng.standard_normal((4, 6)).astype("f"), np.eye(3, dtype="f")[[0, 1, 2, 0]])
                       for _ in range(n)] for split, n in (("train", 3), ("eval", 2))}
    for split, pairs in batches.items():
        for e, y in pairs:
            writer.splits[split].write(e, y)
    assert embeddings.read_store(store) is None  # no meta.json yet: a Tuner killed mid-pass leaves no store
    writer.close()
    datasets, counts = embeddings.read_store(store)
    assert counts == {"train": 12, "eval": 8}
    for split, pairs in batches.items():
        back = np.stack([e for e, _ in datasets[split].as_numpy_iterator()])
        np.testing.assert_array_equal(back, np.concatenate([e for e, _ in pairs]))


def test_the_store_key_follows_what_decides_the_embeddings_and_nothing_else():
    from config.settings import PipelineConfig
    config = PipelineConfig().with_model("musicnn")
    base = embeddings.store_path(config, "pipeline_root/Transform/transform_graph/5", ["examples/Split-train/*"], ["examples/Split-eval/*"])
    assert base.startswith(config.pipeline_root) and "/embeddings/musicnn-" in base
    tuned = dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=0.009, heads=3,
                                                                  label_smoothing=0.1, class_balance=1.0))
    assert embeddings.store_path(tuned, "pipeline_root/Transform/transform_graph/5", ["examples/Split-train/*"],
                                 ["examples/Split-eval/*"]) == base
    assert embeddings.store_path(config, "pipeline_root/Transform/transform_graph/6", ["examples/Split-train/*"],
                                 ["examples/Split-eval/*"]) != base
    other_input = dataclasses.replace(config, features=dataclasses.replace(config.features, n_mels=64))
    assert embeddings.store_path(other_input, "pipeline_root/Transform/transform_graph/5", ["examples/Split-train/*"],
                                 ["examples/Split-eval/*"]) != base
