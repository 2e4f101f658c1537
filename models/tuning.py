"""TFX Tuner entry point (``tuner_fn``): each family's search space, searched by a KerasTuner oracle, every
trial scored by the fold protocol (models/folds.py). The splits are read, and a frozen body run, once per
tuning run; the chosen values become TFX's best-hyperparameters artifact, applied over the preset."""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Optional

import keras_tuner
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from keras_tuner.src.engine import base_tuner
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.v1.components import TunerFnResult

from components.audio_example_gen.views import VIEW_INDEX_STRIDE
from config.settings import TUNE_ORACLES, PipelineConfig, TuneConfig
from models import (augment, embeddings, folds, hyperparameters, live_examples, preprocessing, registry, tracking,
                    training)
from models.canonical_order import CanonicalShards

OBJECTIVE = "fold_clip_accuracy"
LABEL_SMOOTHING = (0.0, 0.1, 0.2, 0.3)
CLASS_BALANCE = (0.0, 0.5, 1.0)
HEADS = (1, 3, 5)
# What else each family's preset was chosen over (docs/model-selection.md).
FAMILY_CHOICES: dict[str, dict[str, tuple]] = {
    "cnn": {"band_shift": (0, 4, 8)},
    "efficientnet": {"mixup_alpha": (0.0, 0.2, 0.4)},
    "vgg": {"finetune_learning_rate": (3e-5, 1e-4, 3e-4)},
}


def heads_only(config: PipelineConfig) -> bool:
    """Whether the family trains heads alone on a frozen body's embeddings (no fine-tuning)."""
    return config.train.epochs <= config.train.frozen_epochs and registry.has_pretrained_backbone(config)


def search_space(config: PipelineConfig) -> keras_tuner.HyperParameters:
    """The settings a trial of ``config``'s family may change, each a choice defaulting to the preset's value
    where it is among them; heads only where heads train alone on a frozen body."""
    t = config.train
    hp = keras_tuner.HyperParameters()

    def choice(name: str, values: tuple) -> None:
        current = getattr(t, name)
        hp.Choice(name, list(values), default=current if current in values else None)

    rate = t.learning_rate  # two digits for a third and three times the preset's
    choice("learning_rate", tuple(sorted({float(f"{rate / 3:.2g}"), rate, float(f"{rate * 3:.2g}")})))
    choice("label_smoothing", LABEL_SMOOTHING)
    choice("class_balance", CLASS_BALANCE)
    if heads_only(config):
        choice("heads", HEADS)
    for name, values in FAMILY_CHOICES.get(t.model, {}).items():
        choice(name, values)
    return hp


class _PresetFirst:
    """The first trial is the preset's, so the chosen setting beats the preset on the same folds or is the preset."""

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if not self.trials:
            return {"status": "RUNNING", "values": self.hyperparameters.copy().values}
        return super().populate_space(trial_id)


# Each oracle with the preset first; Hyperband's preset trial belongs to no bracket and has no ``tuner/epochs``:
# it trains the whole budget.
ORACLES = {name: type(f"{name.title()}FromPreset", (_PresetFirst, oracle), {}) for name, oracle in (
    ("random", keras_tuner.oracles.RandomSearchOracle), ("bayesian", keras_tuner.oracles.BayesianOptimizationOracle),
    ("hyperband", keras_tuner.oracles.HyperbandOracle))}


def make_oracle(tune: TuneConfig, space: keras_tuner.HyperParameters, seed: int, max_epochs: int) -> keras_tuner.Oracle:
    """KerasTuner's ``tune.oracle`` over ``space``, maximising the fold score, the preset first; a failed trial
    ends the search (it is a fault, not a bad setting). Hyperband's budgets go up to ``max_epochs``."""
    if tune.oracle not in TUNE_ORACLES:
        raise ValueError(f"Unknown oracle {tune.oracle!r}; choose one of {', '.join(TUNE_ORACLES)}.")
    common: dict[str, Any] = dict(objective=keras_tuner.Objective(OBJECTIVE, direction="max"), seed=seed,
                                  hyperparameters=space, allow_new_entries=False, tune_new_entries=False,
                                  max_consecutive_failed_trials=1)
    if tune.oracle != "hyperband":
        return ORACLES[tune.oracle](max_trials=tune.trials, **common)
    oracle = ORACLES["hyperband"](max_epochs=max_epochs, factor=3, **common)
    oracle.max_trials = tune.trials  # Hyperband's brackets, cut at the trial budget
    return oracle


def load_segments(config: PipelineConfig, tft_output: tft.TFTransformOutput, train_files: list[str],
                  eval_files: list[str], scratch: str, body: Optional[keras.Model] = None,
                  store: Optional[embeddings.SegmentStore] = None,
                  content_ids: Optional[dict[str, str]] = None) -> folds.Segments:
    """The train and eval segments in memory, in canonical order: the model's inputs, or ``body``'s embeddings
    gathered from ``store`` (one in ``scratch`` without it) once the body has embedded those it lacks."""
    shards = training.split_shards(tft_output, config, scratch, train=train_files, eval=eval_files)
    store = store if store is not None else embeddings.SegmentStore(os.path.join(scratch, "embeddings"))
    splits = [embeddings.read_split(shards[name], tft_output, content_ids, store.salt) for name in ("train", "eval")]

    def batches(split_shards: CanonicalShards) -> tf.data.Dataset:
        return training.make_dataset(split_shards, tft_output, config, training=False, with_track_ids=True)

    if body is None:
        inputs = [{k: v.numpy() for k, v in x.items()} if isinstance(x, dict) else x.numpy()
                  for split in splits for x, _, _ in batches(split.shards)]
        joined = ({k: np.concatenate([c[k] for c in inputs]) for k in inputs[0]} if isinstance(inputs[0], dict)
                  else np.concatenate(inputs))
    else:
        embeddings.embed_missing(store, body, splits, batches, "tune")
        joined = np.concatenate([store.gather(split.keys) for split in splits])
    track_ids = np.array([t.decode() for split in splits for t in split.track_ids], dtype=object)
    return folds.Segments(joined, np.concatenate([split.labels for split in splits]), track_ids,
                          np.concatenate([split.indices for split in splits]) >= VIEW_INDEX_STRIDE)


PROGRESS_SECONDS = embeddings.PROGRESS_SECONDS


def _labelled(segments: folds.Segments, genres: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((segments.inputs, np.eye(genres, dtype=np.float32)[segments.labels]))


def _weights(config: PipelineConfig, kept: folds.Segments) -> Optional[np.ndarray]:
    if config.train.class_balance <= 0:
        return None
    counts = np.bincount(kept.labels, minlength=len(config.genres))
    return training.class_weights(counts, config.train.class_balance)


def train_heads(config: PipelineConfig, template: keras.Model) -> folds.TrainAndPredict:
    """A fold's training on embeddings as the Trainer's: ``train.heads`` fresh heads, seeds seed + 1000 k, averaged."""
    t = config.train

    def run(kept: folds.Segments, stop: folds.Segments, held: folds.Inputs) -> np.ndarray:
        train = _labelled(kept, len(config.genres)).cache()
        stop_set = _labelled(stop, len(config.genres)).batch(t.batch_size).cache()
        predictions = []
        for k in range(t.heads):
            keras.utils.set_random_seed(t.seed + 1000 * k)
            head = keras.models.clone_model(template)
            with tempfile.TemporaryDirectory() as run_dir:
                training.fit_head(head, train, stop_set, config, run_dir, min(t.frozen_epochs, t.epochs),
                                  t.seed + 1000 * k, _weights(config, kept), progress=False)
            predictions.append(head.predict(held, batch_size=256, verbose=0))
        return np.mean(predictions, axis=0)

    return run


def train_whole(config: PipelineConfig, tft_output: tft.TFTransformOutput) -> folds.TrainAndPredict:
    """A fold's training of the whole family from its seed through the Trainer's ``fit``, on segments in memory."""
    stats = preprocessing.normalisation_stats(tft_output, config)
    shape = training.model_input_shape(tft_output, config)
    gain_per_db = augment.gain_scale(config.features, stats.std)

    def batches(segments: folds.Segments, augmented: bool) -> tf.data.Dataset:
        ds = _labelled(segments, len(config.genres))
        if augmented:
            ds = ds.shuffle(len(segments), seed=config.train.seed)
        ds = ds.batch(config.train.batch_size)
        if augmented and not config.features.extra_kinds:
            ds = ds.map(lambda x, y: augment.augment_batch(x, y, config.train, gain_per_db),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    def run(kept: folds.Segments, stop: folds.Segments, held: folds.Inputs) -> np.ndarray:
        keras.utils.set_random_seed(config.train.seed)
        model = registry.build_model(config, shape, input_stats=(stats.mean, stats.std))
        probe = batches(kept, augmented=False) if registry.has_pretrained_backbone(config) else None
        with tempfile.TemporaryDirectory() as run_dir:
            model, _ = training.fit(model, batches(kept, augmented=True), batches(stop, augmented=False), config,
                                    run_dir, probe, _weights(config, kept), records=False)
        return model.predict(held, batch_size=256, verbose=0)

    return run


@dataclasses.dataclass
class TrialRecord:
    number: int
    values: dict[str, Any]
    clip_accuracy: float
    clips_correct: int
    clips: int
    seconds: float
    hyperparameters: Optional[keras_tuner.HyperParameters] = None


class FoldTuner(base_tuner.BaseTuner):
    """KerasTuner's search loop with the fold protocol as the trial, no trial starting after ``max_seconds``; the
    search ends in an MLflow run of its own (:meth:`on_search_end`)."""

    def __init__(self, oracle: keras_tuner.Oracle, config: PipelineConfig, segments: folds.Segments,
                 trainer: Callable[[PipelineConfig], folds.TrainAndPredict], directory: str,
                 max_seconds: Optional[float] = None) -> None:
        super().__init__(oracle, directory=directory, project_name="folds", overwrite=True)
        self.config, self.segments, self.trainer, self.max_seconds = config, segments, trainer, max_seconds
        self.assignment = folds.fold_of_tracks(segments.track_ids, segments.labels, config.tune.folds,
                                               config.split.group_by, config.labels.source == "folders")
        self.preset = {name: getattr(config.train, name)
                       for name in hyperparameters.chosen(oracle.hyperparameters.copy().values)}
        self.records: list[TrialRecord] = []
        self.started = time.time()

    def on_search_begin(self) -> None:
        self.started = time.time()
        clips = len(set(self.segments.track_ids[~self.segments.is_view]))
        print(f"[tune] {self.config.train.model}: up to {self.oracle.max_trials} trials ({self.config.tune.oracle}), "
              f"each {self.config.tune.folds} folds over {clips} train and eval clips", flush=True)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> float:
        values = hyperparameters.chosen(trial.hyperparameters.values)
        config = hyperparameters.apply(self.config, values)
        budget = trial.hyperparameters.values.get("tuner/epochs")  # Hyperband's epochs for this trial
        if budget:
            config = dataclasses.replace(config, train=dataclasses.replace(
                config.train, epochs=min(config.train.epochs, int(budget))))
        started = time.time()
        number = len(self.records) + 1

        def fold_trained(done: int, total: int) -> None:
            # Whole-network trials take minutes a fold; a trial of heads on embeddings ends before a line is due.
            spent = time.time() - started
            if done < total and spent >= PROGRESS_SECONDS:
                print(f"[tune] trial {number}/{self.oracle.max_trials}: fold {done}/{total} trained, {spent:.0f} s; "
                      f"about {spent / done * (total - done):.0f} s left in this trial", flush=True)
        score = folds.cross_validate(self.segments, self.assignment, self.trainer(config), fold_trained)
        record = TrialRecord(number, values, score.clip_accuracy, score.clips_correct, score.clips,
                             round(time.time() - started, 1), trial.hyperparameters)
        self.records.append(record)
        total, best = self.oracle.max_trials, max(r.clip_accuracy for r in self.records)
        left = (time.time() - self.started) / number * (total - number) if total else 0.0
        print(f"[tune] trial {number}/{total}: {hyperparameters.describe(values)}: fold clip accuracy "
              f"{record.clip_accuracy:.3f} ({record.clips_correct}/{record.clips} clips), best {best:.3f}; "
              f"{record.seconds:.0f} s, about {left:.0f} s left", flush=True)
        return score.clip_accuracy

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)
        if self.max_seconds is not None and time.time() - self.started >= self.max_seconds:
            # The oracle stops at max_trials: the trials so far are the budget.
            self.oracle.max_trials = len(self.oracle.trials)
            print(f"[tune] time budget of {self.max_seconds / 60:g} min spent after {len(self.records)} trials: "
                  "no further trial", flush=True)

    def chosen(self) -> TrialRecord:
        """The best trial, or the preset's where no trial beats it by more than hyperparameters.PRESET_MARGIN."""
        best = max(self.records, key=lambda r: r.clip_accuracy)
        preset = next((r for r in self.records if r.values == self.preset), None)
        if preset is not None and (best.clips_correct - preset.clips_correct
                                   <= hyperparameters.PRESET_MARGIN * preset.clips):
            return preset
        return best

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[keras_tuner.HyperParameters]:
        """What TFX's Tuner writes as the best hyperparameters: :meth:`chosen` first."""
        if not self.records:
            return super().get_best_hyperparameters(num_trials)
        chosen = self.chosen()
        rest = [r for r in sorted(self.records, key=lambda r: -r.clip_accuracy) if r is not chosen]
        return [r.hyperparameters for r in [chosen, *rest][:num_trials]]

    def on_search_end(self) -> None:
        """An MLflow run ``tune-<family>-<time>``: the chosen values (tag ``tuned``, params ``tuned.*``), each trial's
        score as a step, and the trials as a table (``tuning/trials.json``)."""
        super().on_search_end()
        if not self.records:
            return
        import mlflow

        best = self.chosen()
        leader = max(self.records, key=lambda r: r.clip_accuracy)
        names = sorted({name for r in self.records for name in r.values})
        with tracking.training_run(self.config, run_name=f"tune-{self.config.train.model}-"
                                                         f"{time.strftime('%Y%m%d-%H%M%S')}") as run:
            mlflow.set_tags({"genre.stage": "tune", "tuned": hyperparameters.describe(best.values)})
            mlflow.log_params({f"tuned.{name}": value for name, value in best.values.items()})
            for r in self.records:
                mlflow.log_metric(OBJECTIVE, r.clip_accuracy, step=r.number)
            mlflow.log_metric(f"best_{OBJECTIVE}", best.clip_accuracy)
            table = {column: [getattr(r, field) for r in self.records] for column, field in (("trial", "number"),
                     (OBJECTIVE, "clip_accuracy"), ("clips_correct", "clips_correct"), ("seconds", "seconds"))}
            table.update({name: [r.values.get(name) for r in self.records] for name in names})
            mlflow.log_table(table, artifact_file="tuning/trials.json")
            kept = "" if leader is best else (
                f"; the preset, kept: trial {leader.number} led it by {leader.clips_correct - best.clips_correct} "
                f"clips, within {hyperparameters.PRESET_MARGIN:.0%} of {best.clips}")
            print(f"[tune] chosen: {hyperparameters.describe(best.values)} (fold clip accuracy "
                  f"{best.clip_accuracy:.3f}, trial {best.number} of {len(self.records)}{kept}); MLflow run "
                  f"{run.info.run_id}", flush=True)


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """TFX's Tuner: the fold-protocol search of the configured family (custom_config's pipeline_config)."""
    config = PipelineConfig.from_json(fn_args.custom_config["pipeline_config"])
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    keras.utils.set_random_seed(config.train.seed)
    scratch = os.path.join(fn_args.working_dir, "scratch")
    started = time.time()
    try:
        if heads_only(config):
            stats = preprocessing.normalisation_stats(tft_output, config)
            model = registry.build_model(config, training.model_input_shape(tft_output, config),
                                         input_stats=(stats.mean, stats.std))
            body, template = registry.split_backbone(model)
            store = embeddings.store_for(config, tft_output, fn_args.transform_graph_path, scratch, "tune")
            segments = load_segments(config, tft_output, fn_args.train_files, fn_args.eval_files, scratch, body, store,
                                     content_ids=live_examples.content_ids(fn_args.train_files))
            trainer, what = functools.partial(train_heads, template=template), "as the frozen body's embeddings"
        else:
            segments = load_segments(config, tft_output, fn_args.train_files, fn_args.eval_files, scratch)
            trainer, what = functools.partial(train_whole, tft_output=tft_output), "as model inputs"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"[tune] {len(segments)} train and eval segments ready {what} in {time.time() - started:.0f} s", flush=True)
    oracle = make_oracle(config.tune, search_space(config), config.train.seed, config.train.epochs)
    max_seconds = config.tune.max_minutes * 60 if config.tune.max_minutes else None
    tuner = FoldTuner(oracle, config, segments, trainer, os.path.join(fn_args.working_dir, "keras_tuner"), max_seconds)
    return TunerFnResult(tuner=tuner, fit_kwargs={})
