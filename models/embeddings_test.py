"""models/embeddings.py: a body's embeddings written to a file and read back in the dataset's order."""
from __future__ import annotations

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
