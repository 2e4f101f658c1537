"""What the training code under test reads, without a pipeline run: transformed segment files (GZIP'd
tf.Examples as Transform writes them), the TFTransformOutput view of them, canonical-order shards, a config
with a few training settings changed, and in-memory segments the fold protocol and the tuner can separate."""
from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from config.settings import PipelineConfig
from models import canonical_order, folds

KIND, SHAPE = "log_mel", (16, 8)


def write_segments(path, segments, kind: str = KIND, shape: tuple[int, int] = SHAPE) -> None:
    """GZIP'd transformed examples, one per (track id, segment index, label); features seeded by the segment."""
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for track, index, label in segments:
            seed = int.from_bytes(hashlib.sha1(f"{track}#{index}".encode()).digest()[:4], "big")
            values = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                kind: tf.train.Feature(float_list=tf.train.FloatList(value=values.reshape(-1))),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                "track_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[track.encode()])),
                "segment_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
            })).SerializeToString())


def segments_output(kind: str = KIND, shape: tuple[int, int] = SHAPE) -> SimpleNamespace:
    """What the input pipeline reads of a TFTransformOutput, for files written by :func:`write_segments`."""
    return SimpleNamespace(transformed_feature_spec=lambda: {
        kind: tf.io.FixedLenFeature(shape, tf.float32), "label": tf.io.FixedLenFeature([], tf.int64),
        "track_id": tf.io.FixedLenFeature([], tf.string), "segment_index": tf.io.FixedLenFeature([], tf.int64)})


def tiny_shards(folder, genre: str, tracks: int, segments_per_track: int, kind: str, shape: tuple[int, int],
                min_shards: int = 1):
    """(tft_output, shards) of ``tracks`` x ``segments_per_track`` segments, labels cycling over 3 classes."""
    write_segments(folder / "part-0.gz", [(f"{genre}.{t:05d}", i, t % 3) for t in range(tracks)
                                          for i in range(segments_per_track)], kind, shape)
    tft_output = segments_output(kind, shape)
    return tft_output, canonical_order.write_shards(str(folder / "*.gz"), tft_output, str(folder / "shards"),
                                                    min_shards=min_shards)


def train_config(model: str = "cnn", **changes) -> PipelineConfig:
    """The model's preset with some ``config.train`` fields changed."""
    config = PipelineConfig().with_model(model)
    config.train = dataclasses.replace(config.train, **changes)
    return config


def separable_segments(views: bool = False) -> folds.Segments:
    """Two genres, six tracks each, two segments a track, separable by the first input number; with views, one more
    segment a track marked as a training view."""
    rows, labels, tracks, is_view = [], [], [], []
    for label, genre in enumerate(("blues", "rock")):
        for n in range(6):
            for view in ((False, True) if views else (False,)):
                for _ in range(1 if view else 2):
                    rows.append([label * 2.0 - 1.0 + 0.1 * n, 0.0])
                    labels.append(label)
                    tracks.append(f"{genre}.{n:05d}")
                    is_view.append(view)
    return folds.Segments(np.array(rows, np.float32), np.array(labels), np.array(tracks, dtype=object),
                          np.array(is_view))


def examples_of_tracks(folder, tracks: dict[str, list[str]]):
    """An Examples artifact under ``folder`` whose splits hold one record per track id of ``tracks`` (split -> ids):
    what the Trainer's executor reads of the tracks a model has seen."""
    import os
    from tfx.types import artifact_utils, standard_artifacts
    examples = standard_artifacts.Examples()
    examples.uri = str(folder)
    examples.split_names = artifact_utils.encode_split_names(list(tracks))
    for split, ids in tracks.items():
        split_folder = artifact_utils.get_split_uri([examples], split)
        os.makedirs(split_folder)
        with tf.io.TFRecordWriter(os.path.join(split_folder, "data_tfrecord-00000-of-00001.gz"), options="GZIP") as w:
            for track in ids:
                feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[track.encode()]))
                w.write(tf.train.Example(features=tf.train.Features(feature={"track_id": feature})).SerializeToString())
    return examples
