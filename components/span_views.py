"""A split of the live data as Examples artifacts TFX's components read: one per span of the chain.

A span without retired tracks in the split is read where it lies; one with retired tracks is copied once into a
scratch folder without their records (the Evaluator's TFMA reads files, not an index). An artifact written before
spans is its own view."""
from __future__ import annotations

import os

import tensorflow as tf
from tfx import types
from tfx.types import artifact_utils, standard_artifacts

from components.audio_example_gen import spans

_BATCH = 512


def split_views(examples: types.Artifact, split: str, scratch: str) -> list[types.Artifact]:
    """Examples artifacts whose ``split`` together hold the live records of ``examples``'s chain."""
    chain = spans.read_chain(examples.uri)
    if not chain.span:
        return [examples]
    views = []
    for span, uri in sorted(chain.uris.items()):
        dropped = chain.dropped(span, split)
        if dropped:
            target = os.path.join(scratch, f"span-{span:05d}")
            _copy_without(os.path.join(uri, f"Split-{split}"), os.path.join(target, f"Split-{split}"), dropped)
            uri = target
        view = standard_artifacts.Examples()
        view.uri = uri
        view.split_names = artifact_utils.encode_split_names([split])
        for name, value in examples.mlmd_artifact.custom_properties.items():  # payload and file formats
            view.mlmd_artifact.custom_properties[name].CopyFrom(value)
        views.append(view)
    return views


def _copy_without(source: str, target: str, dropped: frozenset[str]) -> None:
    spec = {"track_id": tf.io.FixedLenFeature([], tf.string)}
    tf.io.gfile.makedirs(target)
    files = sorted(tf.io.gfile.glob(os.path.join(source, "*")))
    with tf.io.TFRecordWriter(os.path.join(target, "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(_BATCH):
            tracks = tf.io.parse_example(batch, spec)["track_id"].numpy()
            for record, track in zip(batch.numpy(), tracks):
                if track.decode() not in dropped:
                    writer.write(record)
