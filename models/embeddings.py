"""A frozen body's embeddings of a dataset, written to disk once and streamed back for the heads' epochs.

Why on disk: the heads train for many epochs on the same embeddings, and at library scale they do
not fit in memory. One record holds one input batch's (embeddings, labels); reading them back
unbatched gives the examples in the dataset's order, so a seeded shuffle repeats a run.
"""
from __future__ import annotations

import os

import tensorflow as tf
import tf_keras as keras

EMBEDDING, LABEL = "embedding", "label"


def _bytes_feature(tensor: tf.Tensor) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.serialize_tensor(tensor).numpy()]))


def embed(body: keras.Model, dataset: tf.data.Dataset, path: str) -> tf.data.Dataset:
    """Run the frozen body once over (x, y) batches into the TFRecord file ``path``; (embedding, label)
    pairs, unbatched, read back from it. Memory: one batch."""
    tf.io.gfile.makedirs(os.path.dirname(path))
    shapes = None
    with tf.io.TFRecordWriter(path) as writer:
        for x, y in dataset:
            embeddings, labels = tf.cast(body(x, training=False), tf.float32), tf.cast(y, tf.float32)
            shapes = embeddings.shape[1:], labels.shape[1:]
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                EMBEDDING: _bytes_feature(embeddings), LABEL: _bytes_feature(labels)})).SerializeToString())
    if shapes is None:
        raise ValueError(f"No examples to embed into {path}: the dataset is empty.")
    return read_embeddings(path, *shapes)


def read_embeddings(path: str, embedding_shape: tf.TensorShape, label_shape: tf.TensorShape) -> tf.data.Dataset:
    """The (embedding, label) pairs :func:`embed` wrote to ``path``, unbatched, in the order written."""
    spec = {EMBEDDING: tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.string)}

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_single_example(record, spec)
        embeddings = tf.ensure_shape(tf.io.parse_tensor(parsed[EMBEDDING], tf.float32), [None, *embedding_shape])
        labels = tf.ensure_shape(tf.io.parse_tensor(parsed[LABEL], tf.float32), [None, *label_shape])
        return embeddings, labels

    return tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                             deterministic=True).unbatch()
