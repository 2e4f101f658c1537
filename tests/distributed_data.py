"""A tiny real Transform output for the distributed-training tests, and a Trainer process to run on it.

``python -m tests.distributed_data DIR`` writes the data; ``python tests/distributed_data.py train ...``
(:func:`train_main`) runs ``models.training.run_fn`` in a process of its own, so a test can first split the
CPU into logical devices (before TensorFlow starts) or set TF_CONFIG for a multi-worker cluster.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENRES = ("blues", "classical", "metal")
TRACKS, SEGMENTS = 2, 2  # per genre, per track: 12 segments of musicnn's 3 s at 16 kHz


def base_config(model: str = "musicnn"):
    """musicnn's audio and features (16 kHz, 187 x 96 log-mel), three genres; ``model`` the family trained on it, for
    one epoch (musicnn: its head's epoch on the frozen body's embeddings, then one of fine-tuning)."""
    from config.settings import PipelineConfig
    config = PipelineConfig().with_model("musicnn")
    config = dataclasses.replace(config, genres=GENRES)
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, model=model, epochs=2 if model == "musicnn" else 1, frozen_epochs=1, heads=1, batch_size=4,
        early_stopping_patience=None, stop_at_eval_accuracy=None, spec_augment=False, random_gain_db=0.0,
        lr_schedule="constant"))


def raw_rows(config) -> list[dict]:
    import tensorflow as tf

    from models import audio
    from synthetic.generator import render_track
    a, rows = config.audio, []
    for label, genre in enumerate(config.genres):
        for track in range(TRACKS):
            clip = render_track(genre, track, seconds=SEGMENTS * a.segment_seconds, sample_rate=a.sample_rate, seed=1)
            pcm = audio.encode_pcm16_segments(tf.constant(clip), a.segment_samples, a.hop_samples, a.last_segment)
            rows += [{"audio": [p], "label": [label], "track_id": [f"{genre}.{track:05d}".encode()],
                      "segment_index": [i]} for i, p in enumerate(pcm.numpy())]
    return rows


def write_transform_output(work: str) -> dict[str, str]:
    """Transform (tft_beam, DirectRunner) of :func:`raw_rows`: {"transform": dir, "examples": GZIP'd transformed
    examples (train and eval alike), "raw": the raw examples by "track#segment", pickled, for the serving
    signature}."""
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from config.settings import TRANSFORM_SECTIONS
    from models import preprocessing

    config = base_config()
    rows = raw_rows(config)
    spec = {"audio": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.FixedLenFeature([1], tf.int64),
            "track_id": tf.io.FixedLenFeature([1], tf.string), "segment_index": tf.io.FixedLenFeature([1], tf.int64)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    custom_config = {"pipeline_config": config.to_json(TRANSFORM_SECTIONS)}
    out = {"transform": os.path.join(work, "transform"), "examples": os.path.join(work, "examples"),
           "raw": os.path.join(work, "raw.pkl")}
    dump = os.path.join(work, "transformed.pkl")
    with beam.Pipeline(runner="DirectRunner", argv=["--direct_running_mode=in_memory"]) as p:
        with tft_beam.Context(temp_dir=os.path.join(work, "tmp")):
            raw = p | beam.Create(rows, reshuffle=False)
            (transformed, _), transform_fn = (raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
                lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config))
            _ = transform_fn | tft_beam.WriteTransformFn(out["transform"])
            _ = transformed | beam.combiners.ToList() | beam.Map(_dump, dump)
    with open(dump, "rb") as f:
        transformed_rows = pickle.load(f)
    os.makedirs(out["examples"], exist_ok=True)
    # Two files, so that the canonical shards do not follow the files.
    for part in range(2):
        with tf.io.TFRecordWriter(os.path.join(out["examples"], f"part-{part}.gz"), options="GZIP") as writer:
            for row in transformed_rows[part::2]:
                writer.write(_example(row))
    raw_examples = {f"{row['track_id'][0].decode()}#{row['segment_index'][0]}": tf.train.Example(
        features=tf.train.Features(feature={"audio": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=row["audio"]))})).SerializeToString() for row in rows}
    _dump(raw_examples, out["raw"])
    return out


def _dump(value, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(value, f)


def _example(row: dict) -> bytes:
    import numpy as np
    import tensorflow as tf
    feature = {}
    for key, value in row.items():
        array = np.asarray(value).reshape(-1)
        if array.dtype.kind == "f":
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=array))
        elif array.dtype.kind in "iu":
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=array))
        else:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(array)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def train_main(argv: list[str]) -> None:
    """Run the Trainer's run_fn on :func:`write_transform_output`'s data; the trained model's probabilities on the
    transformed examples, with their "track#segment" keys, go to ``--answers`` (.npz) to compare with the export."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="the folder write_transform_output wrote")
    parser.add_argument("--out", required=True, help="serving model dir")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--strategy", default="one")
    parser.add_argument("--mixed-precision", default="none")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--mlflow-uri", required=True)
    parser.add_argument("--answers")
    args = parser.parse_args(argv)
    import tensorflow as tf
    if args.logical_cpus:  # first, before TensorFlow initialises its devices
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
    import numpy as np
    from tfx.components.trainer.fn_args_utils import FnArgs

    from models import training
    config = base_config(args.model)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, strategy=args.strategy, mixed_precision=args.mixed_precision))
    config.paths = dataclasses.replace(config.paths, mlflow_tracking_uri=args.mlflow_uri)
    examples = os.path.join(args.data, "examples", "*.gz")
    if args.answers:
        exporter = training.export_model

        def export_and_answer(model, tft_output, config, path):
            spec = tft_output.transformed_feature_spec()
            parsed = tf.io.parse_example(
                list(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(examples)), compression_type="GZIP")
                     .as_numpy_iterator()),
                {key: spec[key] for key in (config.features.kind, "track_id", "segment_index")})
            features = parsed[config.features.kind]
            float32 = training.copy_model(model, float32=True) if args.mixed_precision != "none" else model
            np.savez(args.answers, probabilities=model(features, training=False).numpy(),
                     float32=float32(features, training=False).numpy(), policy=model.dtype_policy.name,
                     keys=np.array([f"{t.decode()}#{int(i)}" for t, i in
                                    zip(parsed["track_id"].numpy().reshape(-1),
                                        parsed["segment_index"].numpy().reshape(-1))]))
            exporter(model, tft_output, config, path)

        training.export_model = export_and_answer
    fn_args = FnArgs(transform_output=os.path.join(args.data, "transform"), train_files=[examples],
                     eval_files=[examples], serving_model_dir=args.out, model_run_dir=args.run_dir,
                     custom_config={"pipeline_config": config.to_json()})
    training.run_fn(fn_args)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if sys.argv[1:2] == ["train"]:
        train_main(sys.argv[2:])
    else:
        print(json.dumps(write_transform_output(sys.argv[1])), flush=True)
        # Everything is on disk: leave without the interpreter's final garbage collection, which crashes
        # (SIGSEGV) after an in-memory Beam run of tft_beam over records this size.
        os._exit(0)
