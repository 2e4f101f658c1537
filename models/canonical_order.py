"""A split's serialised examples in a canonical order, streamed from sorted shard files on local disk.

Transform's output order changes between executions; sorting by a hash of (track id, segment index) lets a seed
repeat a run on any Transform output of the same data, and keeps a track's segments apart. The split need not fit
in memory: records are bucketed by key range into files of about ``SHARD_BYTES``, each sorted in memory."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import os
from typing import Iterable, Iterator, Optional

import tensorflow as tf

from models import live_examples, preprocessing

SHARD_BYTES = 64 * 2**20
# Serialised bytes per byte of the GZIP'd Transform output, assumed when choosing N; a bucket that comes
# out larger than SHARD_BYTES anyway is split again, so the guess sets the cost, never the bound.
EXPANSION = 2
MAX_FANOUT = 256  # files open at once while bucketing; a larger split takes a second level of buckets
KEY_BYTES = hashlib.sha1().digest_size
_POSITION_BYTES = 8  # a key's position in the key space: its first 8 bytes as an integer
_KEY_SPACE = 2 ** (8 * _POSITION_BYTES)
_READ_BATCH = 256


def segment_key(track_id: bytes, segment_index: int) -> bytes:
    """The sort key of one example: sha1 of ``track_id#segment_index``."""
    return hashlib.sha1(track_id + b"#" + str(int(segment_index)).encode()).digest()


def matching_files(file_pattern: list[str] | str) -> list[str]:
    """The sorted files matching one glob or any of several."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else file_pattern
    return sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))


@dataclasses.dataclass(frozen=True)
class CanonicalShards:
    """Sorted shard files whose concatenation is a split in canonical order."""

    paths: tuple[str, ...]
    corrections: Optional[live_examples.Corrections] = None  # for records of spans normalised before this run

    def records(self, shard_index: int = 0, num_shards: int = 1) -> tf.data.Dataset:
        """The serialised examples of every ``num_shards``-th shard from ``shard_index``, files read one after the
        other (interleaving would make the order depend on the shard count)."""
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index {shard_index} is outside 0..{num_shards - 1}.")
        mine = list(self.paths[shard_index::num_shards])
        if not mine:
            raise ValueError(f"Worker {shard_index} of {num_shards} has no shard: the split has only "
                             f"{len(self.paths)}; write it with write_shards(..., min_shards={num_shards}).")
        return tf.data.Dataset.from_tensor_slices(mine).interleave(tf.data.TFRecordDataset, cycle_length=1)


def _keyed_records(sources: list[live_examples.Source], tft_output) -> Iterator[bytes]:
    """Each live record of the sources' GZIP'd files, prefixed with its :func:`segment_key` and, in a span to correct,
    suffixed with its correction row (a second Features message, which protobuf merges into the record's)."""
    full_spec = tft_output.transformed_feature_spec()
    spec = {key: full_spec[key] for key in (preprocessing.TRACK_ID_KEY, preprocessing.SEGMENT_INDEX_KEY)}
    for source in sources:
        files = matching_files(source.pattern)
        if not files:
            continue
        tag = b"" if source.row is None else tf.train.Example(features=tf.train.Features(feature={
            live_examples.CORRECTION_ROW: tf.train.Feature(int64_list=tf.train.Int64List(value=[source.row]))}
        )).SerializeToString()
        for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(_READ_BATCH):
            parsed = tf.io.parse_example(batch, spec)
            tracks = parsed[preprocessing.TRACK_ID_KEY].numpy().reshape(-1)
            indices = parsed[preprocessing.SEGMENT_INDEX_KEY].numpy().reshape(-1)
            for record, track, index in zip(batch.numpy(), tracks, indices):
                if track not in source.dropped:
                    yield segment_key(track, index) + record + tag


def _bucket(keyed: Iterable[bytes], lo: int, hi: int, n: int, work_dir: str,
            names: Iterator[int]) -> list[tuple[str, int, int]]:
    """Write keyed records into n files by key range; (path, lo, hi) of each, in key order."""
    edges = [lo - (-(hi - lo) * i // n) for i in range(n + 1)]  # range i: the keys the loop below puts in i
    paths = [os.path.join(work_dir, f"bucket-{next(names):06d}.tfrecord") for _ in range(n)]
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    try:
        for item in keyed:
            writers[(int.from_bytes(item[:_POSITION_BYTES], "big") - lo) * n // (hi - lo)].write(item)
    finally:
        for writer in writers:
            writer.close()
    return [(path, edges[i], edges[i + 1]) for i, path in enumerate(paths)]


def _read(path: str) -> Iterator[bytes]:
    for batch in tf.data.TFRecordDataset(path).batch(_READ_BATCH):
        yield from batch.numpy()


def _sort_bucket(path: str, lo: int, hi: int, max_bytes: int, work_dir: str, names: Iterator[int],
                 shard_paths: list[str]) -> None:
    """Sort one bucket into shard files appended to ``shard_paths`` in key order; split it first if too large."""
    size = tf.io.gfile.stat(path).length
    if size > max_bytes and hi - lo > 1:  # a range of one position holds copies of one key: sorted as it is
        n = min(MAX_FANOUT, 2 * math.ceil(size / max_bytes))
        buckets = _bucket(_read(path), lo, hi, n, work_dir, names)
        tf.io.gfile.remove(path)
        for sub_path, sub_lo, sub_hi in buckets:
            _sort_bucket(sub_path, sub_lo, sub_hi, max_bytes, work_dir, names, shard_paths)
        return
    items = sorted(_read(path))  # key, then the serialised bytes: ties in a fixed order
    tf.io.gfile.remove(path)
    if not items:
        return
    shard = os.path.join(work_dir, f"shard-{len(shard_paths):05d}.tfrecord")
    with tf.io.TFRecordWriter(shard) as writer:
        for item in items:
            writer.write(item[KEY_BYTES:])
    shard_paths.append(shard)


def shard_count(files: list[str], max_shard_bytes: int, min_shards: int = 1) -> int:
    """Buckets of the first pass: enough for the GZIP'd files' expanded size, at most MAX_FANOUT."""
    size = sum(tf.io.gfile.stat(f).length for f in files)
    return min(MAX_FANOUT, max(min_shards, math.ceil(size * EXPANSION / max_shard_bytes), 1))


def write_shards(file_pattern: list[str] | str | live_examples.LiveSplit, tft_output, work_dir: str,
                 max_shard_bytes: int = SHARD_BYTES, min_shards: int = 1) -> CanonicalShards:
    """Sort the GZIP'd examples of ``file_pattern`` (or a split of the live data) into shard files under
    ``work_dir`` (the caller removes it), holding one bucket in memory; at least ``min_shards`` key ranges, for
    workers."""
    live = file_pattern if isinstance(file_pattern, live_examples.LiveSplit) else live_examples.LiveSplit(
        [live_examples.Source(p) for p in ([file_pattern] if isinstance(file_pattern, str) else file_pattern)], None)
    files = matching_files([s.pattern for s in live.sources])
    if not files:
        raise FileNotFoundError(f"No transformed examples match {[s.pattern for s in live.sources]}.")
    tf.io.gfile.makedirs(work_dir)
    names = itertools.count()
    shard_paths: list[str] = []
    n = shard_count(files, max_shard_bytes, min_shards)
    for path, lo, hi in _bucket(_keyed_records(live.sources, tft_output), 0, _KEY_SPACE, n, work_dir, names):
        _sort_bucket(path, lo, hi, max_shard_bytes, work_dir, names, shard_paths)
    return CanonicalShards(tuple(shard_paths), live.corrections)
