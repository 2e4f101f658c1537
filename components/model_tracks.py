"""Which tracks a model has seen, recorded beside it, so the gate never scores a baseline in-sample.

After a run on other data the candidate's test tracks can be the baseline's train tracks; the gate then drops the
baseline. Ids are paths under the data root without the extension (``IDENTITY_KEY``); a model recorded under the
earlier rule (file stems) is not compared."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator, Optional

import tensorflow as tf
from tfx import types
from tfx.types import artifact_utils

from components.audio_example_gen import spans
from config.settings import GATE_SPLIT, SPLITS
from models import live_examples

TRACKS_FILE = "tracks_by_split.json"
IDENTITY_KEY = "track_ids"
IDENTITY = "path under the data root"  # audio/discovery.track_id
SEEN_SPLITS = tuple(split for split in SPLITS if split != GATE_SPLIT)  # train, and eval that picks the epoch
_BATCH = 512


def read_split(examples: types.Artifact, split: str, spec: dict[str, Any], batch_size: int = _BATCH
               ) -> Iterator[tuple[tf.Tensor, dict[str, tf.Tensor]]]:
    """(serialized, parsed ``spec``) batches of one split's gzipped tf.Examples, one batch in memory at a time."""
    files = sorted(tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))
    if not files:
        return
    for serialized in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size).prefetch(1):
        yield serialized, tf.io.parse_example(serialized, spec)


def record(model_uri: str, examples: types.Artifact) -> None:
    """``{split: sorted distinct track ids}`` of each split of ``examples`` -> ``<model_uri>/TRACKS_FILE``; the live
    tracks of every span where the transformed examples name the Examples of a chain (models/live_examples.py)."""
    live = live_examples.read_json(os.path.join(examples.uri, live_examples.LIVE_FILE))
    found: dict[str, set[str]] = {split: set() for split in SPLITS}
    if live is not None:
        for r in spans.read_index(live["examples"]):
            if r["status"] == "ingested":
                found[r["split"]].add(r["track_id"])
    else:
        spec = {"track_id": tf.io.FixedLenFeature([], tf.string)}
        for split in SPLITS:
            found[split].update(t.decode() for _, parsed in read_split(examples, split, spec)
                                for t in parsed["track_id"].numpy())
    tracks = {IDENTITY_KEY: IDENTITY, **{split: sorted(ids) for split, ids in found.items()}}
    with tf.io.gfile.GFile(os.path.join(model_uri, TRACKS_FILE), "w") as f:
        json.dump(tracks, f, indent=1)


def load(model_uri: str) -> Optional[dict[str, list[str]]]:
    """The tracks a model recorded, or None for a model trained before they were recorded."""
    return live_examples.read_json(os.path.join(model_uri, TRACKS_FILE))


def baseline_decision(candidate: Optional[dict[str, list[str]]], baseline: Optional[dict[str, list[str]]],
                      baseline_name: str) -> Optional[str]:
    """None when the baseline has seen none of the candidate's test tracks, else the line that says why not."""
    if candidate is None or baseline is None:
        which = "the candidate" if candidate is None else f"last blessed model {baseline_name}"
        return (f"{which} was trained before track lists were recorded ({TRACKS_FILE}): whether the baseline "
                "trained on the candidate's test tracks is unknown, so this run gates on the absolute bars only")
    if candidate.get(IDENTITY_KEY) != baseline.get(IDENTITY_KEY):
        return (f"last blessed model {baseline_name} names its tracks by an earlier rule (file stems under the genre "
                "folder, not paths under the data root): whether it trained on the candidate's test tracks is "
                "unknown, so this run gates on the absolute bars only")
    test = set(candidate.get(GATE_SPLIT, []))
    seen = sorted(test & {track for split in SEEN_SPLITS for track in baseline.get(split, [])})
    if not seen:
        return None
    examples = ", ".join(seen[:3]) + (", ..." if len(seen) > 3 else "")
    return (f"last blessed model {baseline_name} trained on {len(seen)} of the candidate's {len(test)} test tracks "
            f"({examples}; other data or another split): its score on them would be in-sample, so this run "
            "gates on the absolute bars only")
