"""The command-line flags of the local and Kubeflow runners (defaults from PipelineConfig, values out of range
refused before anything runs), and the PipelineConfig they ask for; config.settings knows nothing of flags."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from typing import Callable, Optional

from config.settings import (DEFAULT_OUTPUT_DIR, GENRES, GROUPINGS, HASH_PROTOCOLS, MIN_SYNTHETIC_TRACKS, MIN_TUNE_FOLDS,
                             MN04_FAMILIES, MODEL_TYPES, SPLIT_PROTOCOLS, STOP_AFTER_PASSES, SYNTHETIC_STOP_ACCURACY,
                             TUNE_ORACLES, GateConfig, LabelsConfig, PathsConfig, PipelineConfig, TuneConfig)
from models.distribute import PRECISIONS, STRATEGIES
from pipeline.beam_args import beam_args


def add_cli_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags shared by the local and Kubeflow runners; defaults come from PipelineConfig."""
    d = PipelineConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--data-root", help="GTZAN-style audio root (<root>/<genre>/<genre>.NNNNN.wav, or its "
                   "genres_original/ or genres/ folder). Default: generate the synthetic data set.")
    g.add_argument("--split", choices=SPLIT_PROTOCOLS, default=d.split.protocol,
                   help="track-level split protocol (default: %(default)s)")
    g.add_argument("--split-dir", help="folder with train_filtered.txt, valid_filtered.txt, test_filtered.txt")
    g.add_argument("--group-by", choices=GROUPINGS, default=d.split.group_by,
                   help="stratified and hash protocols: tracks kept together in one split: their folder (album), "
                        "the first folder under the genre (artist), the files' own album or artist tags "
                        "(tag-album, tag-artist; the folder rule for a file without the tag), or none (track) "
                        "(default: %(default)s)")
    g.add_argument("--split-ratios", type=_ratios, default=d.split.ratios, metavar="TRAIN,EVAL,TEST",
                   help="stratified and hash protocols: fractions of tracks per split (default: %s)" % ",".join(map(str, d.split.ratios)))
    g.add_argument("--genres", type=_genre_list, metavar="A,B,C",
                   help="the label set, in label order (default: GTZAN's ten: " + ",".join(GENRES) + ")")
    g.add_argument("--genres-from-data", action="store_true",
                   help="the label set is the data root's genre folders (sorted), at least two; with --labels tags or "
                        "a manifest, the genres the files name")
    g.add_argument("--labels", type=_labels, default=d.labels.source, metavar="folders|tags|FILE.csv|FILE.parquet",
                   help="where each file's genre comes from: its genre folder (folders), its own genre tag (tags: ID3, "
                        "Vorbis, MP4, ASF), or a manifest with columns path (relative to the data root), genre and "
                        "optionally artist, album; with tags or a manifest the files may lie at any depth in any "
                        "layout, and the album and artist grouping reads the same tags or columns (default: "
                        "%(default)s)")
    g.add_argument("--genre-map", metavar="FILE",
                   help="CSV of rows synonym,genre merged into the label set's names (tags and manifests)")
    g.add_argument("--min-tracks-per-genre", type=whole_number(1), default=d.labels.min_tracks_per_genre,
                   help="genres with fewer tracks are left out, each file recorded rare_genre (default: %(default)s)")
    g.add_argument("--max-bad-fraction", type=_fraction, default=d.split.max_bad_fraction,
                   help="fail ingestion when more than this fraction of files is quarantined (default: %(default)s)")
    g.add_argument("--segment-seconds", type=positive_number, default=d.audio.segment_seconds,
                   help="segment length in seconds (default: %(default)s)")
    g.add_argument("--hop-seconds", type=positive_number, metavar="SECONDS",
                   help="distance between segment starts; below --segment-seconds the segments overlap "
                        "(default: the segment length, no overlap)")
    g.add_argument("--max-clip-seconds", type=positive_number, default=d.audio.max_clip_seconds,
                   help="quarantine audio files longer than this (default: %(default)s)")
    g.add_argument("--max-segments-per-track", type=whole_number(0), default=d.audio.max_segments_per_track,
                   help="segments kept per track, spread over a longer track; 0: no limit (default: %(default)s)")
    g.add_argument("--train-views", type=view_list, metavar="VIEW[,VIEW]",
                   help="device-like copies of every train track added to the train split: device, clipped, or none "
                        "(components/audio_example_gen/views.py); eval and test stay as recorded (default: the "
                        f"model's preset: {_preset_views_text()})")
    g.add_argument("--synthetic-tracks", default=d.synthetic.tracks_per_genre,
                   type=whole_number(MIN_SYNTHETIC_TRACKS, "a genre needs a train, an eval and a test track"),
                   help="synthetic data set: tracks per genre (default: %(default)s)")
    g.add_argument("--synthetic-seconds", type=positive_number, default=d.synthetic.seconds,
                   help="synthetic data set: seconds per track (default: %(default)s)")
    g = parser.add_argument_group("model")
    g.add_argument("--model", choices=MODEL_TYPES, default=d.train.model,
                   help="model family; the feature front end follows it (default: %(default)s)")
    g.add_argument("--epochs", type=whole_number(1),
                   help=f"maximum epochs; VGG: head and fine-tuning together (default: the model's preset, "
                   f"{d.train.epochs} unless the preset says otherwise)")
    g.add_argument("--warm-start-epochs", type=whole_number(0), metavar="N",
                   help="start from the champion's weights when its family, label set and input are this run's, "
                   "and train at most N epochs; 0: every run trains from the start (default: "
                   f"{d.train.warm_start_epochs}; 0 on Kubeflow, which runs only TFX's built-in resolvers)")
    g.add_argument("--stop-at-eval-accuracy", type=_fraction, metavar="X",
                   help="stop training once the eval split's segment accuracy reaches X on "
                   f"{STOP_AFTER_PASSES} epochs in a row; 0: never (default: {SYNTHETIC_STOP_ACCURACY:g} on the "
                   "embedded synthetic set unless --epochs is given, which it learns in a few epochs; never on "
                   "--data-root, where the model's preset budget holds)")
    g.add_argument("--batch-size", type=whole_number(1), default=d.train.batch_size,
                   help="the global batch: examples per optimiser step over all replicas, split evenly over them "
                   "(each of R replicas takes --batch-size / R) (default: %(default)s)")
    g.add_argument("--learning-rate", type=positive_number,
                   help=f"(default: the model's preset: {d.train.learning_rate:g}; VGG's head 3e-3, EfficientNet 2e-3)")
    g.add_argument("--max-steps", type=whole_number(1),
                   help="cap on optimiser steps (testing the gate with a bad model)")
    g.add_argument("--seed", type=int, default=d.train.seed,
                   help="seed of weights, shuffling and augmentation; repeats a run on the same Transform output "
                   "(default: %(default)s)")
    g.add_argument("--class-balance", type=_non_negative,
                   help="loss weight per genre = its train segments ** -X (0: off, 1: balanced; default: the "
                   "model's preset)")
    g.add_argument("--backbone-weights", metavar="PATH",
                   help="efficientnet: Keras weights file of the EfficientNetB0 body (include_top=False), e.g. "
                   "efficientnetb0_notop.h5. Default: Keras' ImageNet download where possible, else random "
                   "initialisation (the run says so)")
    g.add_argument("--efficientat-weights", metavar="PATH",
                   help="efficientat, musicnn_efficientat: EfficientAT's mn04_as_mAP_432.pt (checked by size and sha256). "
                   "Default: "
                   "$GENRE_EFFICIENTAT_WEIGHTS, else the weights cache, else a one-time download of the release file")
    g.add_argument("--frozen-epochs", type=whole_number(0), default=d.train.frozen_epochs,
                   help="pretrained models: maximum epochs of the new head on the frozen body; fine-tuning gets the "
                   "rest of --epochs (default: %(default)s)")
    g.add_argument("--finetune-learning-rate", type=positive_number,
                   help=f"pretrained models: learning rate of the fine-tuning that follows the head (default: "
                   f"{d.train.finetune_learning_rate:g}; on the real clips musicnn's body gained at 1e-5 and lost at "
                   "1e-4, docs/model-selection.md)")
    g.add_argument("--label-smoothing", type=_smoothing,
                   help="share of each training target spread evenly over the genres, 0 to below 1 (0: one-hot "
                   "targets; default: the model's preset: 0.2 for musicnn and musicnn_efficientat, else 0)")
    g.add_argument("--heads", type=whole_number(1, "1 is a single head"),
                   help="pretrained models: heads trained on the frozen body, each from its own seed, averaged in the "
                   "exported model (default: the model's preset: 5 for musicnn, lstm, efficientat and "
                   "musicnn_efficientat, else 1)")
    g.add_argument("--strategy", choices=STRATEGIES, default=d.train.strategy,
                   help="where the Trainer trains: one (the default device), mirrored (every local GPU, or the "
                   "logical CPU devices without one), multi-worker (MultiWorkerMirroredStrategy from TF_CONFIG), "
                   "tpu (TPUClusterResolver), auto (multi-worker when TF_CONFIG names 2+ workers, a TPU when one "
                   "is found, mirrored with 2+ GPUs, else one); docs/distributed.md (default: %(default)s)")
    g.add_argument("--mixed-precision", choices=PRECISIONS, default=d.train.mixed_precision,
                   help="train in bfloat16 (TPU, recent CPUs and GPUs) or float16 (GPUs) with float32 "
                   "weights, softmax and loss; the export keeps float32 signatures (default: %(default)s)")
    g = parser.add_argument_group("model selection")
    g.add_argument("--tune", action="store_true",
                   help="search the family's settings with TFX's Tuner before training, every trial scored over "
                   "folds of the train and eval tracks, and train the best (docs/model-selection.md)")
    g.add_argument("--tune-trials", type=whole_number(1), default=d.tune.trials,
                   help="--tune: most trials (default: %(default)s)")
    g.add_argument("--tune-oracle", choices=TUNE_ORACLES, default=d.tune.oracle,
                   help="--tune: KerasTuner's search (default: %(default)s)")
    g.add_argument("--tune-minutes", type=positive_number, metavar="MINUTES",
                   help="--tune: no trial starts after this many minutes of tuning (default: the trials decide)")
    g.add_argument("--tune-folds", type=whole_number(MIN_TUNE_FOLDS, "one trains, one stops training, one is held out"),
                   default=d.tune.folds, help="--tune: folds of the train and eval tracks (default: %(default)s)")
    g = parser.add_argument_group("quality gate")
    for name, kind, text in (("min_accuracy", _fraction, "segment accuracy a model needs to be blessed"),
                             ("min_clip_accuracy", _fraction, "clip (vote) accuracy a model needs to be blessed"),
                             ("max_accuracy_drop", _fraction, "allowed accuracy drop against the last blessed model"),
                             ("min_test_clips", whole_number(1),
                              "fewest clips in the held-out test split a model can be blessed on")):
        g.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(d.gate, name),
                       help=text + " (default: %(default)s)")
    g.add_argument("--no-baseline", dest="compare_to_last_blessed", action="store_false",
                   help="no comparison with the last blessed model, only the absolute bars: for backends that "
                   "cannot run TFX resolvers (open-source Kubeflow Pipelines)")
    g = parser.add_argument_group("paths")
    g.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR),
                   help="where pipeline root, metadata, MLflow store and pushed models go (default: %(default)s)")
    g.add_argument("--pipeline-root", help="TFX pipeline root (default: <output-dir>/pipeline_root)")
    g.add_argument("--serving-dir", help="push destination in TF Serving layout (default: <output-dir>/serving/genre)")
    g.add_argument("--mlflow-uri", help="MLflow tracking URI (default: SQLite store under the pipeline root)")
    g.add_argument("--dask", metavar="HOST:PORT",
                   help="run the Beam steps on the Dask scheduler at HOST:PORT with the project's corrected Dask "
                   "runner (docs/distributed.md)")
    g.add_argument("--beam-arg", action="append", dest="beam_args", metavar="ARG",
                   help="Beam pipeline argument, repeatable (replaces the DirectRunner defaults)")
    return parser


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        ratios = tuple(float(part) for part in text.split(","))
    except ValueError:
        ratios = ()
    if len(ratios) != 3 or min(ratios) <= 0 or abs(sum(ratios) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"{text!r}: give three positive fractions that sum to 1, like 0.7,0.15,0.15")
    return ratios  # type: ignore[return-value]


def _labels(text: str) -> str:
    """--labels: folders, tags, or a manifest file (.csv, .parquet)."""
    from audio.labels import source_of
    try:
        source_of(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def labels_config(args: argparse.Namespace, on_this_machine: bool = True) -> LabelsConfig:
    """--labels, --genre-map and --min-tracks-per-genre; their errors end the run before anything runs."""
    from audio import labels
    from config.errors import UserError
    source = labels.source_of(args.labels)
    if source != labels.FOLDERS and not args.data_root:
        raise SystemExit(f"--labels {args.labels} labels the files of --data-root: pass --data-root DIR (the embedded "
                         "synthetic set is labelled by its genre folders).")
    manifest, digest = None, ""
    if source == labels.MANIFEST and not on_this_machine and "://" not in args.labels and not os.path.isabs(args.labels):
        raise SystemExit(f"--labels {args.labels}: give the path the pipeline sees where it runs (absolute) or a URI "
                         "(gs://...), not a path relative to this machine.")
    try:
        genre_map = labels.read_genre_map(args.genre_map) if args.genre_map else ()
        if source == labels.MANIFEST:
            manifest = args.labels
            if on_this_machine and "://" not in manifest:
                manifest = os.path.abspath(manifest)
                if not os.path.isfile(manifest):
                    raise labels.ManifestError(f"The manifest {manifest} does not exist.", where="--labels",
                                               fix="pass an existing .csv or .parquet file, or --labels folders or tags")
                digest = labels.file_sha256(manifest)
    except UserError as error:
        raise SystemExit(error.paragraph()) from None
    return LabelsConfig(source=source, manifest=manifest, manifest_sha256=digest, genre_map=genre_map,
                        min_tracks_per_genre=args.min_tracks_per_genre)


def _genre_list(text: str) -> tuple[str, ...]:
    genres = tuple(part.strip() for part in text.split(",") if part.strip())
    if len(genres) < 2 or len(set(genres)) != len(genres):
        raise argparse.ArgumentTypeError(f"{text!r}: name at least two different genres, like blues,jazz")
    return genres


def _preset_views_text() -> str:
    """"device for musicnn, efficientat, else none": each preset's views and the families that carry them, for --help."""
    by_views: dict[tuple[str, ...], list[str]] = {}
    for model in MODEL_TYPES:
        by_views.setdefault(PipelineConfig().with_model(model).audio.train_views, []).append(model)
    named = [f"{','.join(v)} for {', '.join(models)}" for v, models in by_views.items() if v]
    return "; ".join(named) + ", else none" if named else "none"


def view_list(text: str) -> tuple[str, ...]:
    """An argparse type: view names (components/audio_example_gen/views.py), comma-separated, or none."""
    from components.audio_example_gen.views import VIEWS
    if text.strip() == "none":
        return ()
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in VIEWS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: no view named {', '.join(unknown)}; the views are "
                                         f"{', '.join(sorted(VIEWS))}, or none to train without views")
    return names


def whole_number(minimum: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, refused before anything runs."""
    def parse(text: str) -> int:
        try:
            value: Optional[int] = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give a whole number of at least {minimum}" + (f" ({why})" if why else ""))
        return value

    return parse


def _number(accepts: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    """An argparse type: a finite number that ``accepts``, else "give ``wanted``"."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r}: give a number, like 0.5")
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"{text!r}: give {wanted}")
        return value

    return parse


positive_number = _number(lambda v: v > 0, "a number above 0")
_non_negative = _number(lambda v: v >= 0, "a number of at least 0")
_fraction = _number(lambda v: 0 <= v <= 1, "a fraction from 0 to 1, like 0.6")
_smoothing = _number(lambda v: 0 <= v < 1, "a share from 0 to below 1, like 0.1 (1 would leave no trace of the label)")


def _weights_file(path: Optional[str], on_this_machine: bool = True, flag: str = "--backbone-weights") -> Optional[str]:
    """--backbone-weights as an absolute path, refused before TensorFlow loads when no such file; for a pipeline run
    elsewhere (Kubeflow) an absolute path or URI, which the Trainer checks where it runs."""
    if path is None:
        return None
    if not on_this_machine:
        if "://" not in path and not os.path.isabs(path):
            raise SystemExit(f"{flag} {path}: give the path the Trainer sees in the image (absolute) "
                             "or a URI (gs://...), not a path relative to this machine.")
        return path
    if not os.path.isfile(path):
        raise SystemExit(f"--backbone-weights {path}: no such file. Pass a Keras weights file of EfficientNetB0 "
                         "without its top (efficientnetb0_notop.h5), or leave the flag out.")
    return os.path.abspath(path)


def _efficientat_weights(args: argparse.Namespace, on_this_machine: bool = True) -> Optional[str]:
    """mn04's verified weights file for the MN04_FAMILIES, found (or downloaded once) before anything runs; None for
    other families, and elsewhere (Kubeflow) without the flag: the Trainer finds it where it runs."""
    if args.model not in MN04_FAMILIES:
        return None
    if not on_this_machine:
        return _weights_file(args.efficientat_weights, on_this_machine, "--efficientat-weights")
    from config.errors import UserError
    from models.efficientat.weights import weights_path  # TensorFlow loads only for this family
    try:
        return str(weights_path(explicit=args.efficientat_weights).resolve())
    except UserError as error:
        raise SystemExit(error.paragraph()) from None


def _warm_start_epochs(asked: Optional[int], on_this_machine: bool) -> int:
    """0 on Kubeflow: its compiler takes only TFX's built-in resolver strategies, and the base model needs its own."""
    if asked and not on_this_machine:
        raise SystemExit(f"--warm-start-epochs {asked}: Kubeflow Pipelines runs only TFX's built-in resolvers, and "
                         "the warm start's base model needs its own, so on Kubeflow every run trains from the start. "
                         "Leave the flag out (or give 0).")
    return PipelineConfig().train.warm_start_epochs if asked is None and on_this_machine else asked or 0


def config_from_args(args: argparse.Namespace, on_this_machine: bool = True) -> PipelineConfig:
    """The config the flags ask for; ``on_this_machine`` False when the pipeline runs elsewhere (Kubeflow)."""
    cfg = PipelineConfig().with_model(args.model)
    cfg.paths = PathsConfig(data_root=args.data_root, output_dir=os.path.abspath(args.output_dir),
                            pipeline_root=args.pipeline_root or "", serving_dir=args.serving_dir or "",
                            mlflow_tracking_uri=args.mlflow_uri or "")
    cfg.split = dataclasses.replace(cfg.split, protocol=args.split, split_dir=args.split_dir,
                                    ratios=tuple(args.split_ratios), max_bad_fraction=args.max_bad_fraction,
                                    group_by=args.group_by)
    if args.genres:
        cfg.genres = tuple(args.genres)
    cfg.labels = labels_config(args, on_this_machine)
    if args.split not in HASH_PROTOCOLS and not args.split_dir:
        raise SystemExit(f"--split {args.split} reads the fault-filtered list files: pass --split-dir DIR "
                         "(the folder holding train_filtered.txt, valid_filtered.txt, test_filtered.txt).")
    hop_seconds = args.segment_seconds if args.hop_seconds is None else args.hop_seconds
    if not 0 < hop_seconds <= args.segment_seconds:
        raise SystemExit(f"--hop-seconds {hop_seconds:g}: give a distance between segment starts above 0 and at most "
                         f"the segment length ({args.segment_seconds:g} s), or leave the flag out for no overlap.")
    cfg.audio = dataclasses.replace(cfg.audio, segment_seconds=args.segment_seconds,
                                    hop_seconds=hop_seconds, max_clip_seconds=args.max_clip_seconds,
                                    max_segments_per_track=args.max_segments_per_track,
                                    train_views=(cfg.audio.train_views if args.train_views is None
                                                 else tuple(args.train_views)))
    if not args.data_root and args.synthetic_seconds < args.segment_seconds:
        raise SystemExit(f"--synthetic-seconds {args.synthetic_seconds:g}: a synthetic track must hold at least one "
                         f"segment ({args.segment_seconds:g} s, --segment-seconds); give a longer track or a "
                         "shorter segment.")
    cfg.synthetic = dataclasses.replace(cfg.synthetic, tracks_per_genre=args.synthetic_tracks,
                                        seconds=args.synthetic_seconds)
    # The Trainer's stopping bar: the flag's (0: none), else a bar on the embedded synthetic set without --epochs.
    stop = (args.stop_at_eval_accuracy if args.stop_at_eval_accuracy is not None
            else SYNTHETIC_STOP_ACCURACY if not args.data_root and not args.epochs else None)
    # Flags left out keep the model's preset.
    preset = {name: getattr(args, name) for name in ("epochs", "learning_rate", "finetune_learning_rate",
                                                     "class_balance", "label_smoothing", "heads")
              if getattr(args, name) is not None}
    cfg.train = dataclasses.replace(cfg.train, **preset, batch_size=args.batch_size, max_steps=args.max_steps,
                                    frozen_epochs=args.frozen_epochs, seed=args.seed,
                                    backbone_weights=_weights_file(args.backbone_weights, on_this_machine),
                                    efficientat_weights=_efficientat_weights(args, on_this_machine),
                                    strategy=args.strategy, mixed_precision=args.mixed_precision,
                                    stop_at_eval_accuracy=stop or None,
                                    warm_start_epochs=_warm_start_epochs(args.warm_start_epochs, on_this_machine))
    cfg.tune = TuneConfig(enabled=args.tune, trials=args.tune_trials, oracle=args.tune_oracle,
                          max_minutes=args.tune_minutes, folds=args.tune_folds)
    cfg.gate = GateConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GateConfig)})
    cfg.beam_args = beam_args(extra=args.beam_args, dask=args.dask)  # --beam-arg, else the DirectRunner defaults
    return cfg
