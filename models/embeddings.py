"""A frozen body's embeddings of a dataset, written to disk once and streamed back for the heads' many epochs
(at library scale they do not fit in memory), in the dataset's order so a seeded shuffle repeats a run.

The store (``embeddings/<key>``) serves later Tuners and Trainers; ``meta.json``, written last, marks it complete."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from config.settings import PipelineConfig

EMBEDDING, LABEL = "embedding", "label"
STORE_SPLITS = ("train", "eval")
META = "meta.json"


class Writer:
    """Batches of (embeddings, labels) into one TFRecord file, in the format :func:`read_embeddings` reads."""

    def __init__(self, path: str) -> None:
        tf.io.gfile.makedirs(os.path.dirname(path))
        self.path, self.count, self.shapes = path, 0, None
        self._writer = tf.io.TFRecordWriter(path)

    def write(self, embeddings: tf.Tensor, labels: tf.Tensor) -> None:
        embeddings, labels = tf.cast(embeddings, tf.float32), tf.cast(labels, tf.float32)
        self.shapes = embeddings.shape[1:], labels.shape[1:]
        self.count += int(embeddings.shape[0])
        serialised = {EMBEDDING: tf.io.serialize_tensor(embeddings), LABEL: tf.io.serialize_tensor(labels)}
        feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.numpy()]))
                   for name, t in serialised.items()}
        self._writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())

    def close(self) -> tuple[tf.TensorShape, tf.TensorShape]:
        self._writer.close()
        if self.shapes is None:
            raise ValueError(f"No examples to embed into {self.path}: the dataset is empty.")
        return self.shapes


def embed(body: keras.Model, dataset: tf.data.Dataset, path: str) -> tf.data.Dataset:
    """Run the frozen body once over (x, y) batches into ``path``; the (embedding, label) pairs read back."""
    writer = Writer(path)
    for x, y in dataset:
        writer.write(body(x, training=False), y)
    return read_embeddings(path, *writer.close())


def store_path(config: PipelineConfig, transform_graph: str, train_files: Sequence[str] | str,
               eval_files: Sequence[str] | str) -> str:
    """The store of ``config``'s frozen body's embeddings of this Transform output's splits."""
    def files(f: Sequence[str] | str) -> list[str]:
        return [f] if isinstance(f, str) else sorted(f)

    t = config.train
    body = {"transform_graph": transform_graph, "train": files(train_files), "eval": files(eval_files),
            "model": t.model, "batch_size": t.batch_size, "efficientat_weights": t.efficientat_weights,
            "audio": dataclasses.asdict(config.audio), "features": dataclasses.asdict(config.features)}
    key = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return os.path.join(config.pipeline_root, "embeddings", f"{t.model}-{key}")


@dataclasses.dataclass
class Store:
    """A store's folder and, once read or written, its (embedding, label) datasets by split."""
    path: str
    datasets: Optional[dict[str, tf.data.Dataset]] = None


class StoreWriter:
    """Writes a store: one :class:`Writer` a split, then ``meta.json`` (shapes and counts) last."""

    def __init__(self, path: str) -> None:
        self.path = path
        if tf.io.gfile.exists(os.path.join(path, META)):
            tf.io.gfile.remove(os.path.join(path, META))  # incomplete until this writer closes
        self.splits = {split: Writer(os.path.join(path, f"{split}.tfrecord")) for split in STORE_SPLITS}

    def close(self) -> None:
        shapes = {split: writer.close() for split, writer in self.splits.items()}
        meta = {split: {"segments": self.splits[split].count, "embedding_shape": shapes[split][0].as_list(),
                        "label_shape": shapes[split][1].as_list()} for split in STORE_SPLITS}
        with tf.io.gfile.GFile(os.path.join(self.path, META), "w") as f:
            f.write(json.dumps(meta))


def embed_into_store(body: keras.Model, datasets: dict[str, tf.data.Dataset], path: str) -> dict[str, tf.data.Dataset]:
    """Run the frozen body once over each split's (x, y) batches into the store at ``path``; what it holds."""
    writer = StoreWriter(path)
    for split in STORE_SPLITS:
        for x, y in datasets[split]:
            writer.splits[split].write(body(x, training=False), y)
    writer.close()
    return read_store(path)[0]


def read_matching_store(path: str, counts: dict[str, int]) -> Optional[dict[str, tf.data.Dataset]]:
    """A complete store's datasets when it holds ``counts`` segments of each split; None, so the caller embeds anew."""
    found = read_store(path)
    return found[0] if found is not None and found[1] == counts else None


def read_store(path: str) -> Optional[tuple[dict[str, tf.data.Dataset], dict[str, int]]]:
    """A complete store's (embedding, label) datasets and segment counts by split; None where there is none."""
    meta_path = os.path.join(path, META)
    if not tf.io.gfile.exists(meta_path):
        return None
    with tf.io.gfile.GFile(meta_path) as f:
        meta = json.load(f)
    datasets = {split: read_embeddings(os.path.join(path, f"{split}.tfrecord"),
                                       tf.TensorShape(meta[split]["embedding_shape"]),
                                       tf.TensorShape(meta[split]["label_shape"])) for split in STORE_SPLITS}
    return datasets, {split: meta[split]["segments"] for split in STORE_SPLITS}


def read_embeddings(path: str, embedding_shape: tf.TensorShape, label_shape: tf.TensorShape) -> tf.data.Dataset:
    """The (embedding, label) pairs :func:`embed` wrote to ``path``, unbatched, in the order written."""
    spec = {EMBEDDING: tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.string)}

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_single_example(record, spec)
        embeddings = tf.ensure_shape(tf.io.parse_tensor(parsed[EMBEDDING], tf.float32), [None, *embedding_shape])
        labels = tf.ensure_shape(tf.io.parse_tensor(parsed[LABEL], tf.float32), [None, *label_shape])
        return embeddings, labels

    return tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
