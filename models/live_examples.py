"""The transformed examples of the live data, as the Trainer and the Tuner read them.

Transform materialises each span of the Examples once (components/bounded_transform/executor.py) and names, in its
output's ``live.json``, the files of every span the live tracks sit in, the per-bin mean and std each span was
normalised with, and the Examples artifact whose track index says which tracks are live. Reading a split then means:
every span's files, the records of retired tracks left out, and a span normalised with earlier statistics moved onto
the current ones (z' = (z s + m - m') / s', exact for Transform's affine per-bin z-score). An output without
live.json (one span, or made before spans) is read as it is."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from components.audio_example_gen import spans

LIVE_FILE = "live.json"
# The feature a record of a span to correct carries in the canonical shards: its row of the correction table.
CORRECTION_ROW = "live_correction_row"


@dataclasses.dataclass(frozen=True)
class SpanFiles:
    """One span's transformed files and the statistics (kind -> per-bin mean, std) they were normalised with."""

    span: int
    uri: str  # the transformed examples artifact that holds them
    stats: dict[str, tuple[list[float], list[float]]]

    def pattern(self, split: str) -> str:
        return os.path.join(self.uri, f"Split-{split}", f"{file_prefix(self.span)}-*")


def file_prefix(span: int) -> str:
    return f"span-{span:05d}"


def write(uri: str, examples_uri: str, files: list[SpanFiles]) -> None:
    with tf.io.gfile.GFile(os.path.join(uri, LIVE_FILE), "w") as f:
        json.dump({"examples": examples_uri, "spans": [dataclasses.asdict(s) for s in files]}, f)


@dataclasses.dataclass(frozen=True)
class Source:
    """Transformed files to read as one span: which tracks are live in them, and the correction row they carry."""

    pattern: str
    dropped: frozenset[bytes] = frozenset()  # tracks whose records here are no longer live
    row: Optional[int] = None  # None: already on the current statistics


@dataclasses.dataclass(frozen=True)
class Corrections:
    """kind -> (scale, shift), [rows, bins] each: a record of row r becomes z * scale[r] + shift[r]."""

    table: dict[str, tuple[np.ndarray, np.ndarray]]

    def apply(self, parsed: dict[str, tf.Tensor], rows: tf.Tensor) -> dict[str, tf.Tensor]:
        """``parsed`` with each corrected kind moved onto the current statistics (rows < 0: left as they are)."""
        out = dict(parsed)
        at = tf.maximum(rows, 0)
        for kind, (scale, shift) in self.table.items():
            x = parsed[kind]
            shape = [-1, *[1] * (x.shape.rank - 2), scale.shape[-1]]
            a, b = (tf.reshape(tf.gather(tf.constant(v, x.dtype), at), shape) for v in (scale, shift))
            out[kind] = tf.where(tf.reshape(rows >= 0, [-1, *[1] * (x.shape.rank - 1)]), x * a + b, x)
        return out


@dataclasses.dataclass(frozen=True)
class LiveSplit:
    sources: list[Source]
    corrections: Optional[Corrections]


def read_json(path: str) -> Optional[dict]:
    """The JSON file at ``path`` (local or in a bucket), None where there is none."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _patterns(files: list[str] | str) -> tuple[list[str], Optional[dict]]:
    """TFX's Split-<split>/* patterns as a list, and the live.json beside them."""
    patterns = [files] if isinstance(files, str) else list(files)
    return patterns, read_json(os.path.join(os.path.dirname(os.path.dirname(patterns[0])), LIVE_FILE))


def content_ids(files: list[str] | str) -> Optional[dict[str, str]]:
    """track id -> the sha256 of its file, for the live tracks (None without live.json): what names a track's
    content in the embeddings store, so a moved or re-analysed file is not embedded again."""
    live = _patterns(files)[1]
    return None if live is None else {r["track_id"]: r["sha256"] for r in spans.read_index(live["examples"])
                                      if r["status"] == "ingested" and r.get("sha256")}


def read(files: list[str] | str, split: str,
         statistics: Callable[[], dict[str, tuple[np.ndarray, np.ndarray]]]) -> LiveSplit:
    """How to read ``split`` of the transformed output that TFX's ``files`` (its Split-<split>/* patterns) name;
    ``statistics()``: kind -> the per-bin (mean, std) of this run's Transform graph, read only for spans."""
    patterns, live = _patterns(files)
    if live is None:
        return LiveSplit([Source(p) for p in patterns], None)
    current = statistics()
    chain = spans.read_chain(live["examples"])
    sources, scales, shifts = [], {k: [] for k in current}, {k: [] for k in current}
    for entry in live["spans"]:
        files_of = SpanFiles(**entry)
        row = None
        if any(not np.array_equal(files_of.stats[k], current[k]) for k in current):
            row = len(next(iter(scales.values())))
            for kind, (mean, std) in current.items():
                old_mean, old_std = (np.asarray(v, np.float64) for v in files_of.stats[kind])
                scales[kind].append(old_std / std)
                shifts[kind].append((old_mean - mean) / std)
        dropped = frozenset(t.encode() for t in chain.dropped(files_of.span, split))
        sources.append(Source(files_of.pattern(split), dropped, row))
    corrections = Corrections({k: (np.asarray(scales[k], np.float32), np.asarray(shifts[k], np.float32))
                               for k in current}) if any(s.row is not None for s in sources) else None
    return LiveSplit(sources, corrections)
