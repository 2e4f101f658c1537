"""A frozen body's embeddings: a store that grows by the segments no run has embedded yet, and each run's
(embedding, label) pairs written to disk in the splits' canonical order and streamed back for the heads' many epochs
(at library scale they do not fit in memory), so a seeded shuffle repeats a run.

The store (:func:`store_for`) names a segment by its track's content and its index (:func:`segment_keys`), so a
grown library embeds only its new tracks and a moved file none. Its append-only chunks are ``emb-<id>.npy`` and
``keys-<id>.npy`` (sorted, the rows of ``emb``); the keys file, written last, makes a chunk count, so a killed run
leaves none that looks complete."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.audio_example_gen.views import VIEW_INDEX_STRIDE
from config.settings import PipelineConfig
from models import features, preprocessing, registry
from models.canonical_order import KEY_BYTES, CanonicalShards

EMBEDDING, LABEL = "embedding", "label"
PROGRESS_SECONDS = 30.0
CHUNK_SEGMENTS = 16384  # a chunk's embeddings wait in memory until written: ~50 MB for musicnn's 753 floats
GATHER_SEGMENTS = 512
STORE_VERSION = 1  # part of the body key: raise it when the body's input code changes what an embedding means


class Writer:
    """Batches of (embeddings, labels) into one TFRecord file, in the format :func:`read_embeddings` reads."""

    def __init__(self, path: str) -> None:
        tf.io.gfile.makedirs(os.path.dirname(path))
        self.path, self.shapes = path, None
        self._writer = tf.io.TFRecordWriter(path)

    def write(self, embeddings: tf.Tensor, labels: tf.Tensor) -> None:
        embeddings, labels = tf.cast(embeddings, tf.float32), tf.cast(labels, tf.float32)
        self.shapes = embeddings.shape[1:], labels.shape[1:]
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


def store_for(config: PipelineConfig, tft_output: tft.TFTransformOutput, transform_graph: str, scratch: str,
              stage: str) -> Optional[SegmentStore]:
    """The store of ``config``'s frozen body (None for a family without one), keyed by what decides its output. The
    musicnn bodies undo Transform's z-score (models/blocks.undo_zscore): only a body that reads the z-scores has
    Transform's statistics, which move as the library grows, in its key. Under a remote pipeline root the store is
    ``scratch``'s, for this run only. ``transform_graph`` salts tracks without a content id (:func:`segment_keys`)."""
    if not registry.has_pretrained_backbone(config):
        return None
    t = config.train
    body = {"version": STORE_VERSION, "model": t.model, "efficientat_weights": t.efficientat_weights,
            "backbone_weights": t.backbone_weights, "mixed_precision": t.mixed_precision,
            "features": dataclasses.asdict(config.features), "audio": dataclasses.asdict(config.audio)}
    if not registry.needs_input_stats(config) and features.is_zscored(config.features.kind):
        stats = preprocessing.normalisation_stats(tft_output, config)
        body["input_stats"] = [stats.mean.tolist(), stats.std.tolist()]
    key = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    root = os.path.join(config.pipeline_root, "embeddings", f"{t.model}-{key}")
    if "://" in root:
        print(f"[{stage}] the pipeline root {config.pipeline_root} is remote and the embeddings store local only: "
              "the frozen body embeds every segment, for this run alone", flush=True)
        root = os.path.join(scratch, "embeddings")
    return SegmentStore(root, salt=transform_graph)


def segment_keys(track_ids: Sequence[bytes], indices: Sequence[int], content_ids: Optional[Mapping[str, str]],
                 salt: str) -> np.ndarray:
    """Each segment's name in a store, sha1 of its track's content id and its index ([n] 20-byte strings). A track
    with no content id is named by its id salted with ``salt``, so another Transform output embeds it again; a
    device view (index from VIEW_INDEX_STRIDE) is seeded by its track id, which its name then holds too."""
    keys = []
    for track, index in zip(track_ids, indices):
        name = track.decode()
        content = (content_ids or {}).get(name) or f"{salt}|{name}"
        if index >= VIEW_INDEX_STRIDE:
            content += f"@{name}"
        keys.append(hashlib.sha1(f"{content}#{int(index)}".encode()).digest())
    return np.array(keys, dtype=f"S{KEY_BYTES}")


class SegmentStore:
    """A body's embeddings by segment key in append-only chunks under ``root``: every chunk's keys (20 bytes a
    segment) in memory, the embeddings memory-mapped. ``salt``: see :func:`segment_keys`."""

    def __init__(self, root: str, salt: str = "") -> None:
        self.root, self.salt = root, salt
        self._index: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None  # sorted keys, their chunk, row
        self._chunks: list[np.ndarray] = []  # each complete chunk's embeddings, memory-mapped

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._index is None:
            names = sorted(f[5:-4] for f in (os.listdir(self.root) if os.path.isdir(self.root) else [])
                           if f.startswith("keys-") and f.endswith(".npy"))
            keys = [np.load(os.path.join(self.root, f"keys-{name}.npy")) for name in names]
            self._chunks = [np.load(os.path.join(self.root, f"emb-{name}.npy"), mmap_mode="r") for name in names]
            every = np.concatenate(keys) if keys else np.zeros(0, f"S{KEY_BYTES}")
            order = np.argsort(every, kind="stable")
            chunk = np.concatenate([np.full(len(k), i) for i, k in enumerate(keys)] or [np.zeros(0, int)])
            row = np.concatenate([np.arange(len(k)) for k in keys] or [np.zeros(0, int)])
            self._index = every[order], chunk[order], row[order]
        return self._index

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's place in the sorted index, and whether it is there."""
        stored = self._load()[0]
        place = np.minimum(np.searchsorted(stored, keys), max(len(stored) - 1, 0))
        return place, (stored[place] == keys) if len(stored) else np.zeros(len(keys), bool)

    def holds(self, keys: np.ndarray) -> np.ndarray:
        return self._find(keys)[1]

    def gather(self, keys: np.ndarray) -> np.ndarray:
        """The embeddings of ``keys`` ([n, ...] float32), every one stored."""
        place, found = self._find(keys)
        if not found.all():
            raise KeyError(f"{int((~found).sum())} of {len(keys)} segments are not in the store {self.root}.")
        _, chunk, row = self._load()
        out = np.empty((len(keys), *self._chunks[0].shape[1:]), np.float32)
        for c in np.unique(chunk[place]):
            mine = chunk[place] == c
            out[mine] = self._chunks[c][row[place][mine]]
        return out

    def append(self, keys: np.ndarray, embeddings: np.ndarray) -> None:
        """One chunk, in key order; each file written under another name and renamed, the keys last."""
        os.makedirs(self.root, exist_ok=True)
        order, name = np.argsort(keys, kind="stable"), uuid.uuid4().hex[:12]
        for kind, values in (("emb", embeddings[order]), ("keys", keys[order])):
            path = os.path.join(self.root, f"{kind}-{name}.npy")
            with open(path + ".part", "wb") as f:
                np.save(f, values)
            os.replace(path + ".part", path)
        self._index = None


@dataclasses.dataclass(frozen=True)
class Split:
    """A split's segments in canonical order, as a store names them."""
    shards: CanonicalShards
    track_ids: np.ndarray  # bytes
    indices: np.ndarray
    labels: np.ndarray
    keys: np.ndarray


def read_split(shards: CanonicalShards, tft_output: tft.TFTransformOutput, content_ids: Optional[Mapping[str, str]],
               salt: str) -> Split:
    """The split's track ids, segment indices, labels and keys: the records parsed for those alone."""
    spec = {k: tft_output.transformed_feature_spec()[k]
            for k in (preprocessing.TRACK_ID_KEY, preprocessing.SEGMENT_INDEX_KEY, preprocessing.LABEL_KEY)}
    parsed = [tf.io.parse_example(batch, spec) for batch in shards.records().batch(1024)]
    tracks, indices, labels = (np.concatenate([p[k].numpy().reshape(-1) for p in parsed]) for k in spec)
    return Split(shards, tracks, indices, labels, segment_keys(tracks, indices, content_ids, salt))


@dataclasses.dataclass(frozen=True, eq=False)
class _Only(CanonicalShards):
    """The records of the shards whose ``keep`` is True, in canonical order: the stored ones are not even parsed."""
    keep: Optional[np.ndarray] = None

    def records(self, shard_index: int = 0, num_shards: int = 1) -> tf.data.Dataset:
        keep = tf.data.Dataset.from_tensor_slices(self.keep)
        return (tf.data.Dataset.zip((super().records(shard_index, num_shards), keep))
                .filter(lambda _, k: k).map(lambda record, _: record))


def embed_missing(store: SegmentStore, body: Callable, splits: Sequence[Split],
                  batches: Callable[[CanonicalShards], tf.data.Dataset], stage: str,
                  clock: Callable[[], float] = time.monotonic) -> int:
    """Run ``body`` over the segments of ``splits`` the store lacks, ``batches`` giving their (x, y, track id)
    batches, into chunks of CHUNK_SEGMENTS; how many it embedded."""
    every = np.concatenate([split.keys for split in splits])
    held, todo = store.holds(every), np.zeros(len(every), bool)
    todo[np.unique(every, return_index=True)[1]] = True  # the first of each key: a copied track is embedded once
    todo &= ~held
    count, total, stored = int(todo.sum()), len(todo), int(held.sum())
    copies = f", {total - count - stored:,} copies of others" if total - count - stored else ""
    print(f"[{stage}] frozen body: {count:,} of {total:,} segments to embed ({stored:,} already in the store "
          f"{store.root}{copies})", flush=True)
    progress, keys, embedded, start = Progress(count, stage, clock), [], [], 0
    for split in splits:
        keep, start = todo[start:start + len(split.keys)], start + len(split.keys)
        rows, done = np.flatnonzero(keep), 0
        if not len(rows):
            continue
        for x, _, track in batches(_Only(split.shards.paths, split.shards.corrections, keep)):
            mine, done = rows[done:done + len(track)], done + len(track)
            if not np.array_equal(track.numpy(), split.track_ids[mine]):
                raise RuntimeError("The body pass read other segments than the store asked for.")
            keys.append(split.keys[mine])
            embedded.append(np.asarray(body(x, training=False), np.float32))
            progress.done(len(mine))
            if sum(map(len, keys)) >= CHUNK_SEGMENTS:
                store.append(np.concatenate(keys), np.concatenate(embedded))
                keys, embedded = [], []
    if keys:
        store.append(np.concatenate(keys), np.concatenate(embedded))
    if count:
        print(f"[{stage}] frozen body: {count:,} segments embedded in {clock() - progress.started:.0f} s", flush=True)
    return count


def write_gathered(store: SegmentStore, split: Split, num_classes: int, path: str) -> tf.data.Dataset:
    """The split's (embedding, one-hot label) pairs from the store into ``path``, in canonical order; read back."""
    writer, one_hot = Writer(path), np.eye(num_classes, dtype=np.float32)
    for start in range(0, len(split.keys), GATHER_SEGMENTS):
        end = start + GATHER_SEGMENTS
        writer.write(store.gather(split.keys[start:end]), one_hot[split.labels[start:end]])
    return read_embeddings(path, *writer.close())


class Progress:
    """Segments embedded of ``total``, their rate and the time left, a line at least every PROGRESS_SECONDS: one is
    due once the next batch, as long as the last, would end later than that after the last line."""

    def __init__(self, total: int, stage: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.stage, self.clock, self.count = total, stage, clock, 0
        self.started = self.shown = self.last = clock()

    def done(self, segments: int) -> None:
        self.count += segments
        now = self.clock()
        step, self.last = now - self.last, now
        if now + step - self.shown >= PROGRESS_SECONDS and self.count < self.total:
            rate = self.count / max(now - self.started, 1e-9)
            print(f"[{self.stage}] embedded {self.count:,}/{self.total:,} segments ({self.count / self.total:.0%}), "
                  f"{rate:.1f} segments/s, about {(self.total - self.count) / rate:.0f} s left", flush=True)
            self.shown = now


def read_embeddings(path: str, embedding_shape: tf.TensorShape, label_shape: tf.TensorShape) -> tf.data.Dataset:
    """The (embedding, label) pairs :func:`embed` wrote to ``path``, unbatched, in the order written."""
    spec = {EMBEDDING: tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.string)}

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_single_example(record, spec)
        embeddings = tf.ensure_shape(tf.io.parse_tensor(parsed[EMBEDDING], tf.float32), [None, *embedding_shape])
        labels = tf.ensure_shape(tf.io.parse_tensor(parsed[LABEL], tf.float32), [None, *label_shape])
        return embeddings, labels

    return tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
