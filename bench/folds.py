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
block by the shipped vote (mean segment probability per clip). ``--stop-on inner`` stops them on the next kept
block instead (which then trains nothing), so that the held-out block chooses nothing, not even the epoch. Only ``train.*`` settings that act on the
head may change: features or the body would need another Transform output.

Training views (``audio.train_views``, components/audio_example_gen/views.py) are the one setting
outside ``train.*``: on a Transform output ingested with them, ``--try views:audio.train_views=device``
adds the view segments of the kept folds' tracks to their training, and a try without it leaves them
out; held-out blocks are always scored on the recorded segments alone. Views exist for the train
split's tracks only, so an eval track in a kept fold trains without its view.

Late fusion (``--fuse-with efficientat=OUT/real-efficientat``): the other family's preset is cross-validated on
the same folds (one assignment over both families' clips), and each try is also scored with a clip's probabilities
the mean of the two families' clip votes, the rule ``bench.accuracy --fuse`` applies to the test split.

Each setting and seed appends one JSON line to ``<output-dir>/folds.jsonl``.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from bench.real_data import add_real_data_arguments  # noqa: E402
from bench.trials import apply_settings  # noqa: E402
from components.audio_example_gen.views import VIEW_INDEX_STRIDE  # noqa: E402
from config.settings import PipelineConfig  # noqa: E402
from pipeline.flags import view_list, whole_number  # noqa: E402

if TYPE_CHECKING:
    import tensorflow as tf
    import tf_keras as keras

HEAD_FAMILIES = ("musicnn", "lstm", "efficientat", "musicnn_efficientat")
# Which block's loss ends a fold's head training (early stopping, best weights): the held-out block itself, as the
# fold rule's figures were made (it compares settings, and flatters a head that overfits sooner than another), or
# the next kept block ("inner"), which then trains nothing, so the held-out block chooses nothing.
STOP_ON = ("held-out", "inner")
VIEWS_SETTING = "audio.train_views"
HEAD_SETTINGS = ("class_balance", "learning_rate", "label_smoothing", "batch_size", "heads",
                 "early_stopping_patience", "frozen_epochs")


@dataclasses.dataclass
class Embedded:
    """The frozen body's output for every train and eval segment, with what scoring needs."""

    embeddings: np.ndarray
    labels: np.ndarray  # one-hot [segments, genres]
    track_ids: np.ndarray  # str per segment
    is_view: np.ndarray  # bool per segment: a training view's segment, not the recording's
    segment_index: np.ndarray  # int per segment (views from VIEW_INDEX_STRIDE on)


def fold_of_tracks(track_ids: Sequence[str], folds: int) -> dict[str, int]:
    """Track id -> fold: per genre (the id's prefix), the tracks in number order cut into ``folds``
    consecutive blocks of near-equal size (a genre with fewer tracks than folds fills the first ones).

    The pipeline's fold rule (models/folds.py, what ``--tune`` scores trials by) with each GTZAN clip its own group.
    """
    from models.folds import fold_of_tracks as grouped_folds

    genres = sorted({track.rsplit(".", 1)[0] for track in track_ids})
    labels = [genres.index(track.rsplit(".", 1)[0]) for track in track_ids]
    return grouped_folds(track_ids, labels, folds, "track")


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
    model = registry.build_model(config, training.model_input_shape(tft_output, config),
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
    labels, indices = np.concatenate([p[1] for p in parts]), np.concatenate(indices)
    embedded = Embedded(np.concatenate([p[0] for p in parts]), np.eye(len(config.genres), dtype=np.float32)[labels],
                        np.array([t.decode() for p in parts for t in p[2]], dtype=object),
                        indices >= VIEW_INDEX_STRIDE, indices)
    return embedded, head


def side_by_side(first: Embedded, second: Embedded) -> Embedded:
    """The segments both families embedded (same track and segment index), each row the two embeddings
    concatenated: the input of one head on both bodies."""
    where = {(t, int(i)): n for n, (t, i) in enumerate(zip(second.track_ids, second.segment_index))}
    pairs = [(n, where[(t, int(i))]) for n, (t, i) in enumerate(zip(first.track_ids, first.segment_index))
             if (t, int(i)) in where]
    if not pairs:
        raise SystemExit("The two families share no segment (track id and segment index): their pipelines ran on "
                         "different data or segment lengths.")
    a, b = (np.array(side) for side in zip(*pairs))
    if (np.argmax(first.labels[a], axis=1) != np.argmax(second.labels[b], axis=1)).any():
        raise SystemExit("The two families label a segment differently: their pipelines ran on different label sets.")
    return Embedded(np.concatenate([first.embeddings[a], second.embeddings[b]], axis=1), first.labels[a],
                    first.track_ids[a], first.is_view[a], first.segment_index[a])


def widened(head: "keras.Model", width: int) -> "keras.Model":
    """HEAD's layers (batch norm, dropout, softmax) on an input of WIDTH numbers: the family's head on both bodies."""
    import tf_keras as keras

    config = head.get_config()
    config["layers"][0]["config"]["batch_input_shape"] = (None, width)
    return keras.Model.from_config(config)


@dataclasses.dataclass
class HeldOut:
    """Every recorded segment's probabilities from the heads of the one fold that held its clip out."""

    track_ids: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray  # genre index per segment
    head_epochs: list[int]

    def clip_votes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(track ids, clip labels, clip probabilities): the shipped soft vote, sorted by track id."""
        from models import metrics

        return metrics.clip_votes(self.track_ids, self.probabilities, self.labels)


def held_out(config: PipelineConfig, template: "keras.Model", embedded: Embedded,
             assignment: dict[str, int], stop_on: str = STOP_ON[0]) -> HeldOut:
    """Each fold of ASSIGNMENT held out once: ``config``'s heads (copies of ``template``'s layers, freshly
    initialised) trained on the other folds score its recorded segments; ``stop_on`` (:data:`STOP_ON`): the block
    whose loss stops them."""
    import tensorflow as tf
    import tf_keras as keras

    from models import training

    t = config.train
    with_views = bool(config.audio.train_views)
    if with_views and not embedded.is_view.any():
        raise SystemExit(f"{VIEWS_SETTING} asks for training views, and this Transform output holds none: run the "
                         "pipeline with --train-views device into a new --output-dir and point --output-dir here.")
    fold = np.array([assignment[track] for track in embedded.track_ids])
    recorded = ~embedded.is_view
    probabilities = np.zeros_like(embedded.labels, dtype=np.float64)
    epochs: list[int] = []
    if stop_on not in STOP_ON:
        raise ValueError(f"stop_on must be one of {STOP_ON}, not {stop_on!r}.")
    blocks = sorted(set(fold))
    for i, k in enumerate(blocks):
        inner = blocks[(i + 1) % len(blocks)] if stop_on == "inner" else k
        held = (fold == k) & recorded
        stop = (fold == inner) & recorded
        kept = (fold != k) & (fold != inner) & (recorded | with_views)
        train = tf.data.Dataset.from_tensor_slices((embedded.embeddings[kept], embedded.labels[kept])).cache()
        stop_set = tf.data.Dataset.from_tensor_slices(
            (embedded.embeddings[stop], embedded.labels[stop])).batch(t.batch_size).cache()
        weights = (training.class_weights(embedded.labels[kept].sum(axis=0), t.class_balance)
                   if t.class_balance > 0 else None)
        heads = []
        for h in range(t.heads):
            # As the Trainer's extra heads: a fresh copy of the head's layers from seed + 1000 h.
            keras.utils.set_random_seed(t.seed + 1000 * h)
            head = keras.models.clone_model(template)
            with tempfile.TemporaryDirectory() as run_dir:
                history = training.fit_head(head, train, stop_set, config, run_dir,
                                            min(t.frozen_epochs, t.epochs), t.seed + 1000 * h, weights,
                                            progress=False)
            epochs.append(len(history["loss"]))
            heads.append(head.predict(embedded.embeddings[held], batch_size=256, verbose=0))
        probabilities[held] = np.mean(heads, axis=0)
    return HeldOut(embedded.track_ids[recorded], probabilities[recorded],
                   np.argmax(embedded.labels[recorded], axis=1), epochs)


def per_genre(confusion: np.ndarray, genres: Sequence[str]) -> dict[str, list[int]]:
    """Genre -> [clips right, clips], the genres with held-out clips only."""
    return {g: [int(confusion[i, i]), int(confusion[i].sum())] for i, g in enumerate(genres) if confusion[i].sum()}


def summary(scored: HeldOut, genres: Sequence[str]) -> dict:
    """Clip and segment accuracy of held-out probabilities, with the heads' mean epochs and per-genre clips."""
    from models import metrics

    scores = metrics.score(scored.track_ids, scored.probabilities, scored.labels)
    return {"clip_accuracy": scores.clip_accuracy, "clips": scores.clips,
            "clips_correct": int(np.trace(scores.clip_confusion)),
            "segment_accuracy": scores.segment_accuracy, "segments": scores.segments,
            "mean_head_epochs": round(float(np.mean(scored.head_epochs)), 1),
            "per_genre": per_genre(scores.clip_confusion, genres)}


def cross_validate(config: PipelineConfig, template: "keras.Model", embedded: Embedded, folds: int,
                   stop_on: str = STOP_ON[0]) -> dict:
    """Every clip held out once: clip and segment accuracy of ``config``'s heads over all folds."""
    return summary(held_out(config, template, embedded, fold_of_tracks(embedded.track_ids, folds), stop_on),
                   config.genres)


def fuse(parts: Sequence[HeldOut], genres: Sequence[str]) -> dict:
    """Late fusion: a clip's probabilities are the mean of each family's clip vote (metrics.fuse_votes), over the
    clips every family holds (a clip one family quarantined is counted in ``clips_left_out``, not scored)."""
    from models import metrics

    try:
        (_, labels, fused), left_out = metrics.fuse_votes([part.clip_votes() for part in parts])
    except ValueError as err:
        raise SystemExit(f"bench.folds --fuse-with: {err}; point both pipeline roots at the same data.") from None
    matrix = metrics.confusion(labels, np.argmax(fused, axis=1), len(genres))
    return {"clip_accuracy": float(np.trace(matrix) / max(len(labels), 1)), "clips": len(labels),
            "clips_correct": int(np.trace(matrix)), "clips_left_out": left_out, "per_genre": per_genre(matrix, genres)}


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


def stop_rules(text: str) -> list[str]:
    """An argparse type: ``--stop-on`` rules, comma-separated."""
    rules = [r.strip() for r in text.split(",") if r.strip()]
    if not rules or any(r not in STOP_ON for r in rules):
        raise argparse.ArgumentTypeError(f"give one or more of {', '.join(STOP_ON)}, comma-separated, not {text!r}")
    return rules


def parse_partner(text: str) -> tuple[str, Path]:
    """``MODEL=DIR`` of --fuse-with -> (model, pipeline root)."""
    model, _, folder = text.partition("=")
    if model not in HEAD_FAMILIES or not folder:
        raise SystemExit(f"--fuse-with {text!r}: give MODEL=DIR, MODEL one of {', '.join(HEAD_FAMILIES)} and DIR its "
                         "pipeline root (the --output-dir its accuracy runs used).")
    return model, Path(folder).resolve()


def embed_family(model: str, output_dir: Path, args: argparse.Namespace) -> tuple[Embedded, "keras.Model", str]:
    """The family's Transform output (computed or taken from the pipeline cache) embedded by its frozen body."""
    from bench.training import prepare

    graph_uri, examples_uri = prepare(model, output_dir, args.data_root, args.split_dir,
                                      output_dir / "trials-prepare.log")
    started = time.time()
    embedded, template = embed_splits(PipelineConfig().with_model(model), graph_uri, examples_uri)
    print(f"[folds] {model}: {len(embedded.track_ids)} train and eval segments ({int(embedded.is_view.sum())} of "
          f"them training views) of {len(set(embedded.track_ids))} clips embedded in {time.time() - started:.0f} s",
          flush=True)
    return embedded, template, examples_uri


def record(output_dir: Path, result: dict) -> None:
    print(f"[folds] {result['model']} {result['label']} seed {result['seed']}, stopped on "
          f"{result.get('stop_on', STOP_ON[0])}: {result['clips_correct']}/"
          f"{result['clips']} clips ({result['clip_accuracy']:.3f})"
          + (f", segments {result['segment_accuracy']:.3f}" if "segment_accuracy" in result else ""), flush=True)
    with open(output_dir / "folds.jsonl", "a") as f:
        f.write(json.dumps(result, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.folds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, help="pipeline root folder (--output-dir of local_runner)")
    parser.add_argument("--model", choices=HEAD_FAMILIES, required=True)
    parser.add_argument("--try", action="append", dest="tries", required=True, metavar="LABEL[:train.X=V,...]",
                        help="a setting to compare (the preset when no X=V); repeatable")
    parser.add_argument("--seeds", default="42", help="comma-separated (default: %(default)s)")
    parser.add_argument("--folds", type=whole_number(2, "each fold trains on the others"), default=5,
                        help="blocks per genre (default: %(default)s)")
    parser.add_argument("--stop-on", default=STOP_ON[0], type=stop_rules,
                        help=f"comma-separated, each try scored under each: {', '.join(STOP_ON)} (the block whose loss "
                        "ends the heads' training: the held-out block itself, or the next kept block, which then "
                        "trains nothing; default: %(default)s)")
    parser.add_argument("--fuse-with", metavar="MODEL=DIR", help="late fusion: also cross-validate MODEL's preset "
                        "(its pipeline root DIR) on the same folds, and score each try averaged with it at clip level")
    add_real_data_arguments(parser, "unused here")
    args = parser.parse_args(argv)
    tries = [parse_try(text) for text in args.tries]
    partner = parse_partner(args.fuse_with) if args.fuse_with else None

    output_dir = Path(args.output_dir).resolve()
    preset = PipelineConfig().with_model(args.model)
    embedded, template, examples_uri = embed_family(args.model, output_dir, args)
    track_ids = list(embedded.track_ids)
    if partner:
        other, other_dir = partner
        other_embedded, other_template, other_examples = embed_family(other, other_dir, args)
        track_ids += list(other_embedded.track_ids)
        joined = side_by_side(embedded, other_embedded)
        print(f"[folds] {len(joined.track_ids)} segments embedded by both, {joined.embeddings.shape[1]} numbers each",
              flush=True)
    # One assignment for every family, so that fused clips were held out of both families' heads alike.
    assignment = fold_of_tracks(track_ids, args.folds)
    print(f"[folds] {args.folds} folds of consecutive tracks per genre", flush=True)
    for seed, stop_on in [(int(s), rule) for s in args.seeds.split(",") if s.strip() for rule in args.stop_on]:
        common = {"seed": seed, "folds": args.folds, "stop_on": stop_on}
        if partner:
            started = time.time()
            other_held = held_out(config_for(PipelineConfig().with_model(other), [], seed), other_template,
                                  other_embedded, assignment, stop_on)
            record(output_dir, {"label": "preset", "model": other, "settings": [], "transform": other_examples,
                                **common, **summary(other_held, preset.genres), "seconds": round(time.time() - started)})
        for label, settings in tries:
            config = config_for(preset, settings, seed)
            started = time.time()
            scored = held_out(config, template, embedded, assignment, stop_on)
            record(output_dir, {"label": label, "model": args.model, "settings": settings, "transform": examples_uri,
                                **common, **summary(scored, config.genres), "seconds": round(time.time() - started)})
            if partner:
                started = time.time()
                both = held_out(config, widened(template, joined.embeddings.shape[1]), joined, assignment, stop_on)
                record(output_dir, {"label": f"{label}, one head on both embeddings", "model": f"{args.model}|{other}",
                                    "settings": settings, "transform": [examples_uri, other_examples], **common,
                                    **summary(both, config.genres), "seconds": round(time.time() - started)})
                record(output_dir, {"label": f"{label} + {other} preset", "model": f"{args.model}+{other}",
                                    "settings": settings, "transform": [examples_uri, other_examples], **common,
                                    **fuse([scored, other_held], config.genres)})


if __name__ == "__main__":
    main(sys.argv[1:])
