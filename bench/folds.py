"""Compare head settings of a frozen-body family by cross-validation over the train and eval clips.

    python -m bench.folds --output-dir /tmp/genre-bench288/real-musicnn --model musicnn \\
        --try preset --try balance0.5:train.class_balance=0.5 --seeds 42,43,44 [--folds 5]

Why: the eval split holds 51 real clips, so one clip is 2 points and settings that differ by less
cannot be told apart on it (docs/model-selection.md). The families that train heads on a
frozen body (musicnn, the LSTM, efficientat) can afford more evidence: the body runs once over every train and eval
segment, and each fold then costs a few seconds of head training. Every clip of train + eval is held out
once, so a setting is judged on 239 clips instead of 51. The test split is never read.

Folds are blocks of consecutive track numbers within each genre (``blues.00000``-``blues.00007``, ...):
GTZAN's clips of one artist mostly carry consecutive numbers, so blocks keep most of an artist on one
side, where a hash split would put an artist's clips on both sides and reward settings that memorise
artists. Each fold trains the family's heads as the Trainer does (``train.heads`` heads from seeds
``seed + 1000 k``, early stopping on the held-out block, probabilities averaged) and scores the held-out
block by the shipped vote (mean segment probability per clip). Only ``train.*`` settings that act on the
head may change: features or the body would need another Transform output.

Training views (``audio.train_views``, components/audio_example_gen/views.py) are the one setting
outside ``train.*``: on a Transform output ingested with them, ``--try views:audio.train_views=device``
adds the view segments of the kept folds' tracks to their training, and a try without it leaves them
out; held-out blocks are always scored on the recorded segments alone. Views exist for the train
split's tracks only, so an eval track in a kept fold trains without its view.

Each setting and seed appends one JSON line to ``<output-dir>/folds.jsonl``.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from bench.real_data import add_real_data_arguments  # noqa: E402
from bench.trials import apply_settings  # noqa: E402
from components.audio_example_gen.views import VIEW_INDEX_STRIDE  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.flags import view_list, whole_number  # noqa: E402

if TYPE_CHECKING:
    import tensorflow as tf
    import tf_keras as keras

HEAD_FAMILIES = ("musicnn", "lstm", "efficientat")
VIEWS_SETTING = "audio.train_views"
HEAD_SETTINGS = ("class_balance", "learning_rate", "label_smoothing", "batch_size", "heads",
                 "early_stopping_patience", "frozen_epochs")
_NUMBER = re.compile(r"(\d+)$")


@dataclasses.dataclass
class Embedded:
    """The frozen body's output for every train and eval segment, with what scoring needs."""

    embeddings: np.ndarray
    labels: np.ndarray  # one-hot [segments, genres]
    track_ids: np.ndarray  # str per segment
    is_view: np.ndarray  # bool per segment: a training view's segment, not the recording's


def fold_of_tracks(track_ids: Sequence[str], folds: int) -> dict[str, int]:
    """Track id -> fold: per genre (the id's prefix), the tracks in number order cut into ``folds``
    consecutive blocks of near-equal size (a genre with fewer tracks than folds fills the first ones)."""
    by_genre: dict[str, list[str]] = {}
    for track in sorted(set(track_ids)):
        by_genre.setdefault(track.rsplit(".", 1)[0], []).append(track)
    assignment: dict[str, int] = {}
    for tracks in by_genre.values():
        tracks.sort(key=lambda t: (int(m.group(1)) if (m := _NUMBER.search(t)) else -1, t))
        for fold, block in enumerate(np.array_split(np.array(tracks, dtype=object), folds)):
            assignment.update((str(t), fold) for t in block)
    return assignment


def head_only(settings: Sequence[str]) -> None:
    """Refuse a setting the cached embeddings cannot honour."""
    for setting in settings:
        key, _, value = setting.partition("=")
        if key == VIEWS_SETTING:
            try:
                view_list(value)
            except argparse.ArgumentTypeError as err:
                raise SystemExit(f"bench.folds {VIEWS_SETTING}: {err}") from None
            continue
        section, _, name = key.partition(".")
        if section != "train" or name not in HEAD_SETTINGS:
            allowed = ", ".join(f"train.{n}" for n in HEAD_SETTINGS)
            raise SystemExit(f"bench.folds compares head settings ({allowed}) and {VIEWS_SETTING} only; {key!r} "
                             "would need another body or Transform output: use bench.trials.")


def segment_indices(records: "tf.data.Dataset", tft_output) -> np.ndarray:
    """segment_index of every serialised example of RECORDS, in their order."""
    import tensorflow as tf

    from models import preprocessing

    spec = {preprocessing.SEGMENT_INDEX_KEY: tft_output.transformed_feature_spec()[preprocessing.SEGMENT_INDEX_KEY]}
    return np.concatenate([tf.io.parse_example(batch, spec)[preprocessing.SEGMENT_INDEX_KEY].numpy().reshape(-1)
                           for batch in records.batch(1024)])


def embed_splits(config: PipelineConfig, graph_uri: str, examples_uri: str) -> tuple[Embedded, "keras.Model"]:
    """Run the family's frozen body once over the train and eval splits (canonical order, no augmentation);
    also the family's head, whose layers each fold copies."""
    import tempfile

    import tensorflow_transform as tft

    from models import canonical_order, preprocessing, registry, training

    tft_output = tft.TFTransformOutput(graph_uri)
    stats = preprocessing.normalisation_stats(tft_output, config)
    model = registry.build_model(config, training.input_shape(tft_output, config.features.kind),
                                 input_stats=(stats.mean, stats.std))
    body, head = registry.split_backbone(model)
    parts, indices = [], []
    for split in ("train", "eval"):
        with tempfile.TemporaryDirectory() as scratch:
            shards = canonical_order.write_shards(os.path.join(examples_uri, f"Split-{split}", "*"), tft_output,
                                                  scratch)
            parts.append(training.predict_split(body, training.make_dataset(
                shards, tft_output, config, training=False, with_track_ids=True)))
            indices.append(segment_indices(shards.records(), tft_output))
    labels = np.concatenate([p[1] for p in parts])
    embedded = Embedded(np.concatenate([p[0] for p in parts]), np.eye(len(config.genres), dtype=np.float32)[labels],
                        np.array([t.decode() for p in parts for t in p[2]], dtype=object),
                        np.concatenate(indices) >= VIEW_INDEX_STRIDE)
    return embedded, head


def cross_validate(config: PipelineConfig, template: "keras.Model", embedded: Embedded, folds: int) -> dict:
    """Every clip held out once: clip and segment accuracy of ``config``'s heads (copies of ``template``'s
    layers, freshly initialised) over all folds."""
    import tensorflow as tf
    import tf_keras as keras

    from models import metrics, training

    t = config.train
    with_views = bool(config.audio.train_views)
    if with_views and not embedded.is_view.any():
        raise SystemExit(f"{VIEWS_SETTING} asks for training views, and this Transform output holds none: run the "
                         "pipeline with --train-views device into a new --output-dir and point --output-dir here.")
    assignment = fold_of_tracks(embedded.track_ids, folds)
    fold = np.array([assignment[track] for track in embedded.track_ids])
    recorded = ~embedded.is_view
    probabilities = np.zeros_like(embedded.labels, dtype=np.float64)
    epochs: list[int] = []
    for k in range(folds):
        held, kept = (fold == k) & recorded, (fold != k) & (recorded | with_views)
        train = tf.data.Dataset.from_tensor_slices((embedded.embeddings[kept], embedded.labels[kept])).cache()
        held_out = tf.data.Dataset.from_tensor_slices(
            (embedded.embeddings[held], embedded.labels[held])).batch(t.batch_size).cache()
        weights = (training.class_weights(embedded.labels[kept].sum(axis=0), t.class_balance)
                   if t.class_balance > 0 else None)
        heads = []
        for h in range(t.heads):
            # As the Trainer's extra heads: a fresh copy of the head's layers from seed + 1000 h.
            keras.utils.set_random_seed(t.seed + 1000 * h)
            head = keras.models.clone_model(template)
            with tempfile.TemporaryDirectory() as run_dir:
                history = training.fit_head(head, train, held_out, config, run_dir,
                                            min(t.frozen_epochs, t.epochs), t.seed + 1000 * h, weights,
                                            progress=False)
            epochs.append(len(history["loss"]))
            heads.append(head.predict(embedded.embeddings[held], batch_size=256, verbose=0))
        probabilities[held] = np.mean(heads, axis=0)
    scores = metrics.score(embedded.track_ids[recorded], probabilities[recorded],
                           np.argmax(embedded.labels[recorded], axis=1))
    return {"clip_accuracy": scores.clip_accuracy, "clips": scores.clips,
            "clips_correct": int(np.trace(scores.clip_confusion)),
            "segment_accuracy": scores.segment_accuracy, "segments": scores.segments,
            "mean_head_epochs": round(float(np.mean(epochs)), 1),
            "per_genre": {g: [int(scores.clip_confusion[i, i]), int(scores.clip_confusion[i].sum())]
                          for i, g in enumerate(config.genres) if scores.clip_confusion[i].sum()}}


def config_for(preset: PipelineConfig, settings: Sequence[str], seed: int) -> PipelineConfig:
    """PRESET with a try's SETTINGS and SEED: the head settings through bench.trials' rule, the views through the
    --train-views flag's (``audio.train_views=device`` or ``=none``; the Transform output decides which exist)."""
    views = [s.partition("=")[2] for s in settings if s.partition("=")[0] == VIEWS_SETTING]
    config = apply_settings(preset, [s for s in settings if s.partition("=")[0] != VIEWS_SETTING])
    if views:
        config = dataclasses.replace(config, audio=dataclasses.replace(config.audio, train_views=view_list(views[-1])))
    return dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))


def parse_try(text: str) -> tuple[str, list[str]]:
    """``LABEL[:train.X=V[,train.Y=W]]`` -> (label, settings)."""
    label, _, rest = text.partition(":")
    settings = [s for s in rest.split(",") if s]
    head_only(settings)
    return label, settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.folds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, help="pipeline root folder (--output-dir of local_runner)")
    parser.add_argument("--model", choices=HEAD_FAMILIES, required=True)
    parser.add_argument("--try", action="append", dest="tries", required=True, metavar="LABEL[:train.X=V,...]",
                        help="a setting to compare (the preset when no X=V); repeatable")
    parser.add_argument("--seeds", default="42", help="comma-separated (default: %(default)s)")
    parser.add_argument("--folds", type=whole_number(2, "each fold trains on the others"), default=5,
                        help="blocks per genre (default: %(default)s)")
    add_real_data_arguments(parser, "unused here")
    args = parser.parse_args(argv)
    tries = [parse_try(text) for text in args.tries]

    from bench.training import prepare

    output_dir = Path(args.output_dir).resolve()
    graph_uri, examples_uri = prepare(args.model, output_dir, args.data_root, args.split_dir,
                                      output_dir / "trials-prepare.log")
    preset = PipelineConfig().with_model(args.model)
    started = time.time()
    embedded, template = embed_splits(preset, graph_uri, examples_uri)
    print(f"[folds] {len(embedded.track_ids)} train and eval segments ({int(embedded.is_view.sum())} of them training "
          f"views) of {len(set(embedded.track_ids))} clips embedded in {time.time() - started:.0f} s; {args.folds} "
          "folds of consecutive tracks per genre", flush=True)
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        for label, settings in tries:
            config = config_for(preset, settings, seed)
            started = time.time()
            result = {"label": label, "model": args.model, "settings": settings, "seed": seed, "folds": args.folds,
                      "transform": examples_uri, **cross_validate(config, template, embedded, args.folds),
                      "seconds": round(time.time() - started)}
            print(f"[folds] {label} seed {seed}: {result['clips_correct']}/{result['clips']} clips "
                  f"({result['clip_accuracy']:.3f}), segments {result['segment_accuracy']:.3f}", flush=True)
            with open(output_dir / "folds.jsonl", "a") as f:
                f.write(json.dumps(result, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
