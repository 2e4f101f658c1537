"""A tiny real Transform: a few synthetic segments cut as ExampleGen cuts them, analysed and transformed by
models.preprocessing's preprocessing_fn on Beam's DirectRunner in memory, for tests that need a real
transform graph in seconds.
"""
from __future__ import annotations

import os
import pickle

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from config.settings import GENRES, TRANSFORM_SECTIONS, AudioConfig, FeatureConfig, PipelineConfig
from models import audio, preprocessing
from synthetic.generator import render_track

# Tiny on purpose: 8 kHz, 0.25 s segments, 16 frames cropped to 12, 16 mel bins.
CONFIG = PipelineConfig(
    audio=AudioConfig(sample_rate=8000, segment_seconds=0.25, hop_seconds=0.25),
    features=FeatureConfig(n_fft=256, hop_length=128, n_mels=16, n_mfcc=8, frames=12))


def raw_spec(shape: list[int], tombstones: bool = False) -> dict:
    """Scalar features: shape [1] as the curated schemas (schemas/*) declare them, or []; ``tombstones``: the
    optional ``tombstone`` feature too, as the curated schemas have it."""
    spec = {"audio": tf.io.FixedLenFeature(shape, tf.string), "label": tf.io.FixedLenFeature(shape, tf.int64),
            "track_id": tf.io.FixedLenFeature(shape, tf.string)}
    return {**spec, preprocessing.TOMBSTONE_KEY: tf.io.VarLenFeature(tf.int64)} if tombstones else spec


def raw_examples(config: PipelineConfig, shape: list[int]) -> list[dict]:
    """Raw examples per docs/contracts.md: int16 LE segments cut as ExampleGen cuts them."""
    a = config.audio
    rows = []
    for label, genre in enumerate(GENRES[:3]):
        clip = render_track(genre, 0, seconds=0.75, sample_rate=a.sample_rate, seed=1)
        pcm = audio.encode_pcm16_segments(tf.constant(clip), a.segment_samples, a.hop_samples, a.last_segment)
        track = f"{genre}.00000".encode()
        rows += [{"audio": p, "label": label, "track_id": track} for p in pcm.numpy()]
    if shape:
        rows = [{k: [v] for k, v in row.items()} for row in rows]
    return rows


def _dump(rows: list, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(rows, f)


def analyze_and_transform(config: PipelineConfig, rows: list[dict], work: str,
                          shape: list[int], tombstones: bool = False) -> tuple[list[dict], str]:
    """Run AnalyzeAndTransformDataset on the DirectRunner; returns transformed rows and the transform dir."""
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec(shape, tombstones)))
    custom_config = {"pipeline_config": config.to_json(TRANSFORM_SECTIONS)}
    out_dir, dump = os.path.join(work, "transform"), os.path.join(work, "rows.pkl")
    with beam.Pipeline(runner="DirectRunner", argv=["--direct_running_mode=in_memory"]) as p:
        with tft_beam.Context(temp_dir=os.path.join(work, "tmp")):
            raw = p | beam.Create(rows, reshuffle=False)
            (transformed, _), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
                lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config))
            _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
            _ = transformed | beam.combiners.ToList() | beam.Map(_dump, dump)
    with open(dump, "rb") as f:
        return pickle.load(f), out_dir
