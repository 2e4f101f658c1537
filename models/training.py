"""TFX Trainer entry point (`run_fn`): input pipeline, fitting, export, MLflow.

Splits stream from canonical shards (models/canonical_order.py), parsed and augmented a batch at a time; the
`test` split is never read. Under a strategy ``train.batch_size`` is the global batch and the chief alone records."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from config.settings import STOP_AFTER_PASSES, PipelineConfig
from models import (augment, distribute, embeddings, features, hyperparameters, live_examples, metrics, plots,
                    preprocessing, registry, signatures, tracking, transfer, warm_start)
from models.canonical_order import CanonicalShards, write_shards

AUTOTUNE = tf.data.AUTOTUNE
FROZEN_BODY_FILE = "frozen_body.json"  # in the run folder: segments the frozen body embedded, of those it used
SHUFFLE_BUFFER = 4096
# Auto-sharding off: each worker's dataset already holds only its own shards.
_SHARDED_BY_HAND = tf.data.Options()
_SHARDED_BY_HAND.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF


def train_class_counts(shards: CanonicalShards, tft_output: tft.TFTransformOutput, num_classes: int) -> np.ndarray:
    """Examples (segments) per label of a split, [num_classes] int64, for class balancing."""
    spec = {"label": tft_output.transformed_feature_spec()["label"]}
    counts = np.zeros(num_classes, np.int64)
    for batch in shards.records().batch(1024):
        labels = tf.io.parse_example(batch, spec)["label"].numpy().reshape(-1)
        counts += np.bincount(labels, minlength=num_classes)[:num_classes]
    return counts


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Per-class loss weights count ** -power, scaled to a mean weight of 1 per training example (``power`` 1:
    sklearn's "balanced", 0: all ones). Weights rather than resampling keep an epoch one pass over the examples."""
    counts = np.asarray(counts, np.float64)
    weights = np.where(counts > 0, np.maximum(counts, 1.0) ** -float(power), 0.0)
    total = float((counts * weights).sum())
    return (weights * counts.sum() / total if total > 0 else weights).astype(np.float32)


def with_class_weights(dataset: tf.data.Dataset, weights: np.ndarray) -> tf.data.Dataset:
    """(x, y) batches -> (x, y, sample weight); weight = y . weights, so mixed (mixup) labels blend theirs."""
    w = tf.constant(weights, tf.float32)
    return dataset.map(lambda x, y: (x, y, tf.linalg.matvec(tf.cast(y, tf.float32), w)),
                       num_parallel_calls=AUTOTUNE, deterministic=True)


def input_shape(tft_output: tft.TFTransformOutput, kind: str) -> tuple[int, int]:
    shape = tft_output.transformed_feature_spec()[kind].shape
    if len(shape) != 2:
        raise ValueError(f"Transformed feature {kind!r} has shape {shape}; expected [frames, bins].")
    return int(shape[0]), int(shape[1])


def model_input_shape(tft_output: tft.TFTransformOutput,
                      config: PipelineConfig) -> tuple[int, int] | dict[str, tuple[int, int]]:
    """The (frames, bins) the model is built for: one shape, or one per input kind (features.as_model_input)."""
    return features.as_model_input({kind: input_shape(tft_output, kind)
                                    for kind in features.model_inputs(config.features)}, config.features)


def make_dataset(shards: CanonicalShards, tft_output: tft.TFTransformOutput, config: PipelineConfig,
                 training: bool, with_track_ids: bool = False, gain_per_db: Optional[np.ndarray] = None,
                 shard_index: int = 0, num_shards: int = 1, static_shapes: bool = False) -> tf.data.Dataset:
    """(features, one-hot labels[, track_ids]) batches of ``train.batch_size`` (the global batch) from a split's
    canonical shards, or this worker's share; ``static_shapes`` (TPU): only full batches, too few records refused."""
    # The model's inputs and the label; the string track id only for host-side scoring (never to an accelerator).
    keys = (*features.model_inputs(config.features), "label", *(("track_id",) if with_track_ids else ()))
    spec = {key: tft_output.transformed_feature_spec()[key] for key in keys}
    if shards.corrections is not None:
        spec[live_examples.CORRECTION_ROW] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
    if num_shards > 1:
        mine = shards.paths[shard_index::num_shards]
        print(f"[train] worker {shard_index} of {num_shards} reads shards "
              f"{', '.join(os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in mine)}",
              flush=True)
    ds = shards.records(shard_index, num_shards)
    drop_remainder = training and static_shapes
    batch = config.train.batch_size
    if drop_remainder and (found := _count(ds.take(batch))) < batch:
        # Static batch shapes (TPU) drop the partial batch: too few records would train nothing.
        whose = f"worker {shard_index} of {num_shards}'s share of " if num_shards > 1 else ""
        raise ValueError(
            f"The training split is too small for static batch shapes: {whose}the train split holds {found} "
            f"examples, fewer than one global batch of {batch} (--batch-size), and a TPU drops the partial "
            f"batch, so nothing would train. Give a --batch-size of at most {max(found, 1)}, or more data.")
    if training:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=config.train.seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch, drop_remainder=drop_remainder)

    def parse(serialized: tf.Tensor):
        parsed = tf.io.parse_example(serialized, spec)
        if shards.corrections is not None:
            parsed = shards.corrections.apply(parsed, parsed.pop(live_examples.CORRECTION_ROW))
        labels = tf.one_hot(parsed["label"], len(config.genres))
        x = features.as_model_input(parsed, config.features)
        if with_track_ids:
            return x, labels, parsed["track_id"]
        return x, labels

    # deterministic=True keeps batches in order, so with the canonical order a seed repeats a training run.
    ds = ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)
    # A model of several inputs trains its heads only, on embeddings of plain batches: no augmentation.
    if training and not config.features.extra_kinds:
        ds = ds.map(lambda x, y: augment.augment_batch(x, y, config.train, gain_per_db),
                    num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE).with_options(_SHARDED_BY_HAND)


class MlflowEpochLogger(keras.callbacks.Callback):
    """Per-epoch metrics to the active MLflow run, and a progress line people can follow."""

    def __init__(self, total_epochs: int, step_offset: int = 0):
        super().__init__()
        self.total_epochs, self.step_offset, self.started = total_epochs, step_offset, time.time()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        import mlflow
        if mlflow.active_run():  # none on a multi-worker run's other workers: only the chief logs
            mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=self.step_offset + epoch)
        shown = " ".join(f"{k}={v:.3f}" for k, v in logs.items() if k in
                         ("loss", "accuracy", "val_loss", "val_accuracy"))
        print(f"[train] epoch {self.step_offset + epoch + 1}/{self.total_epochs} {shown} "
              f"({time.time() - self.started:.0f} s)", flush=True)


def learnt(eval_accuracies: list[float], bar: float, in_a_row: int = STOP_AFTER_PASSES) -> bool:
    """True when the last ``in_a_row`` eval accuracies all reach ``bar``."""
    return len(eval_accuracies) >= in_a_row and all(a >= bar for a in eval_accuracies[-in_a_row:])


class StopWhenPassed(keras.callbacks.Callback):
    """Ends ``fit`` once :func:`learnt` holds: a data set learnt in a few epochs pays no real-clip budget."""

    def __init__(self, bar: float):
        super().__init__()
        self.bar = bar
        self.accuracies: list[float] = []

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.accuracies.append(float((logs or {}).get("val_accuracy", float("nan"))))
        if learnt(self.accuracies, self.bar):
            self.model.stop_training = True
            print(f"[train] eval accuracy {self.accuracies[-1]:.3f} >= {self.bar:g} on {STOP_AFTER_PASSES} epochs "
                  "in a row: stopping here (the data set is learnt; --epochs sets a budget instead)", flush=True)


LR_SCHEDULES = ("constant", "plateau", "cosine")
MONITORS = {"val_loss": "min", "val_accuracy": "max"}


def _callbacks(config: PipelineConfig, run_dir: str, total_epochs: int, step_offset: int, *,
               learning_rate: float, epochs: int, records: bool = True) -> list[keras.callbacks.Callback]:
    """Callbacks of one ``fit`` call; ``total_epochs`` and ``step_offset`` place it in the whole run. ``records``
    False: none that only record the training for people (early stopping keeps the best weights in memory)."""
    t = config.train
    for name, allowed in (("lr_schedule", LR_SCHEDULES), ("early_stopping_monitor", MONITORS)):
        if getattr(t, name) not in allowed:
            raise ValueError(f"Unknown {name} {getattr(t, name)!r}; choose one of {', '.join(allowed)}.")
    monitor, mode = t.early_stopping_monitor, MONITORS[t.early_stopping_monitor]
    callbacks: list[keras.callbacks.Callback] = []
    if t.early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience,
                                                       restore_best_weights=True))
    if records:
        callbacks += [keras.callbacks.ModelCheckpoint(os.path.join(run_dir, "checkpoints", "best.weights.h5"),
                                                      monitor=monitor, mode=mode, save_best_only=True,
                                                      save_weights_only=True),
                      keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch")]
    if t.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=t.reduce_lr_factor,
                                                           patience=t.reduce_lr_patience, verbose=0))
    elif t.lr_schedule == "cosine":
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))))
    if records:
        # Last, so that it logs what the others added to the epoch's logs (the learning rate).
        callbacks.append(MlflowEpochLogger(total_epochs, step_offset))
    if t.stop_at_eval_accuracy is not None:
        callbacks.append(StopWhenPassed(t.stop_at_eval_accuracy))
    return callbacks


def compile_model(model: keras.Model, learning_rate: float, label_smoothing: float = 0.0, announce: bool = False) -> None:
    """``announce``: a [train] line with the learning rate and label smoothing the compiled model holds."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    if announce:  # read back from the compiled model: a tuned setting shows where it acts
        rate = float(keras.backend.get_value(model.optimizer.learning_rate))
        print(f"[train] compiled: learning rate {rate:g}, label smoothing "
              f"{model.loss.get_config()['label_smoothing']:g}", flush=True)


@dataclasses.dataclass(frozen=True)
class EvenSteps:
    """Steps per epoch every worker of a multi-worker run takes, cycling through its own shards: a worker that ran
    out would be fed empty batches, on which batch normalisation fails."""

    train: int
    eval: int
    batch_size: int

    @classmethod
    def of(cls, train: CanonicalShards, eval_: CanonicalShards, batch_size: int) -> "EvenSteps":
        # Every worker counts every shard of a split alike: each sorted the whole split.
        return cls(math.ceil(_count(train.records()) / batch_size), math.ceil(_count(eval_.records()) / batch_size),
                   batch_size)

    def feed(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Full batches without end, from a batched dataset (features, labels[, weights])."""
        return dataset.unbatch().repeat().batch(self.batch_size, drop_remainder=True).with_options(_SHARDED_BY_HAND)


def _count(records: tf.data.Dataset) -> int:
    """Elements of a dataset, read through once."""
    return int(records.reduce(np.int64(0), lambda n, _: n + 1))


def _fit_args(train: tf.data.Dataset, validation: tf.data.Dataset, even: Optional[EvenSteps]) -> dict:
    """``model.fit`` keyword arguments: the datasets, or ``even``'s endless feeds and steps."""
    if even is None:
        return {"x": train, "validation_data": validation}
    return {"x": even.feed(train), "validation_data": even.feed(validation), "steps_per_epoch": even.train,
            "validation_steps": even.eval}


def fit_head(head: keras.Model, train_embeddings: tf.data.Dataset, eval_embeddings: tf.data.Dataset,
             config: PipelineConfig, run_dir: str, epochs: int, seed: int, weights: Optional[np.ndarray],
             progress: bool, even: Optional[EvenSteps] = None) -> dict[str, list[float]]:
    """One head on the embeddings on disk, shuffled by ``seed``. ``progress`` False (an average's extra heads): no
    per-epoch lines or records, which would overwrite the first head's and cost a small head more than its epoch."""
    train = train_embeddings.shuffle(SHUFFLE_BUFFER, seed=seed).batch(
        config.train.batch_size, drop_remainder=distribute.needs_static_shapes()).with_options(_SHARDED_BY_HAND)
    if weights is not None:
        train = with_class_weights(train, weights)
    callbacks = _callbacks(config, run_dir, config.train.epochs, 0, learning_rate=config.train.learning_rate,
                           epochs=epochs, records=progress)
    compile_model(head, config.train.learning_rate, config.train.label_smoothing, announce=progress)
    return _history(head.fit(epochs=epochs, verbose=0, callbacks=callbacks, **_fit_args(train, eval_embeddings, even)))


def _history(result: keras.callbacks.History) -> dict[str, list[float]]:
    return {key: [float(v) for v in values] for key, values in result.history.items()}


def fit_heads_on_embeddings(model: keras.Model, probe_train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset,
                            config: PipelineConfig, run_dir: str, epochs: int, weights: Optional[np.ndarray] = None,
                            even: Optional[EvenSteps] = None, records: bool = True,
                            stored: Optional[dict[str, tf.data.Dataset]] = None,
                            warm_heads: Sequence[list[np.ndarray]] = ()) -> tuple[keras.Model, dict[str, list[float]]]:
    """Frozen phase as a linear probe: embeddings once, then cheap epochs of the head alone (a frozen body minus its
    block dropout). With ``train.heads`` > 1 fresh heads from their own seeds join, averaged by the model; the history
    is the first head's. ``stored``: the splits' embeddings (:func:`_stored_embeddings`), else the body embeds them
    here; ``warm_heads``: the extra heads' starting weights (a warm start), else they start fresh."""
    t = config.train
    embeddings_dir = os.path.join(run_dir, "embeddings")
    try:
        body, head = registry.split_backbone(model)
        stored = stored or {split: embeddings.embed(body, ds, os.path.join(embeddings_dir, f"{split}.tfrecord"))
                            for split, ds in (("train", probe_train_ds), ("eval", eval_ds))}
        train_embeddings, eval_embeddings = stored["train"], stored["eval"]
        eval_embeddings = eval_embeddings.batch(t.batch_size).with_options(_SHARDED_BY_HAND)
        history = fit_head(head, train_embeddings, eval_embeddings, config, run_dir, epochs, t.seed, weights,
                           progress=records, even=even)
        heads = [head]
        for k in range(1, t.heads):
            # Seeds apart from every other run's first head (seed + 1000 k), so seed 43's heads are not seed 42's.
            keras.utils.set_random_seed(t.seed + 1000 * k)
            extra = keras.models.clone_model(head)  # the same layers with freshly initialised weights
            if warm_heads:
                extra.set_weights(warm_heads[k - 1])
            losses = fit_head(extra, train_embeddings, eval_embeddings, config, os.path.join(run_dir, f"head-{k + 1}"),
                              epochs, t.seed + 1000 * k, weights, progress=False, even=even)["val_loss"]
            if records:
                print(f"[train] head {k + 1}/{t.heads}: {len(losses)} epochs, best eval loss {min(losses):.3f} "
                      f"(epoch {losses.index(min(losses)) + 1})", flush=True)
            heads.append(extra)
        return (transfer.average_heads(model, body, heads) if t.heads > 1 else model), history
    finally:
        if tf.io.gfile.exists(embeddings_dir):
            tf.io.gfile.rmtree(embeddings_dir)


def fit(model: keras.Model, train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset, config: PipelineConfig,
        run_dir: str, probe_train_ds: Optional[tf.data.Dataset] = None, weights: Optional[np.ndarray] = None,
        even: Optional[EvenSteps] = None, records: bool = True,
        stored: Optional[dict[str, tf.data.Dataset]] = None,
        warm_heads: Sequence[list[np.ndarray]] = ()) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train; a pretrained backbone goes in two phases: head(s) on frozen embeddings, then fine-tuning. Returns the
    model (a new one when heads are averaged) and its history; ``weights`` weight the training loss only, not the
    eval loss early stopping watches; ``records`` False: nothing recorded (a tuning trial's folds)."""
    t = config.train
    if weights is not None:
        train_ds = with_class_weights(train_ds, weights)
    if t.max_steps or not registry.has_pretrained_backbone(config):
        compile_model(model, t.learning_rate, t.label_smoothing, announce=records)
        args = {**_fit_args(train_ds, eval_ds, even), **({"steps_per_epoch": t.max_steps} if t.max_steps else {})}
        epochs = 1 if t.max_steps else t.epochs
        callbacks = _callbacks(config, run_dir, epochs, 0, learning_rate=t.learning_rate, epochs=epochs,
                               records=records)
        return model, _history(model.fit(epochs=epochs, verbose=0, callbacks=callbacks, **args))
    frozen = min(t.frozen_epochs, t.epochs)
    # No frozen epochs (a warm start of a fine-tuned champion, --frozen-epochs 0): fine-tuning alone.
    model, history = (fit_heads_on_embeddings(model, probe_train_ds, eval_ds, config, run_dir, frozen, weights,
                                              even=even, records=records, stored=stored, warm_heads=warm_heads)
                      if frozen else (model, {}))
    done = len(history.get("loss", []))
    # epochs is both phases' budget: fine-tuning gets what the head left (epochs <= frozen_epochs: the head alone).
    finetune = t.epochs - done if t.epochs > frozen else 0
    if t.stop_at_eval_accuracy is not None and learnt(history.get("val_accuracy", []), t.stop_at_eval_accuracy):
        finetune = 0  # the head alone has learnt the data set
    import mlflow
    if records and mlflow.active_run():
        mlflow.log_metric("head_epochs", float(done))
    then = (f"fine-tuning for up to {finetune} epochs" if finetune else
            "no fine-tuning (the head has learnt the data set)" if t.epochs > frozen else
            f"no fine-tuning (--epochs {t.epochs} <= --frozen-epochs {t.frozen_epochs}: the head alone)")
    heads = f"; {t.heads} heads averaged" if t.heads > 1 else ""
    if records:
        print(f"[train] head: {done} epochs on the frozen body's embeddings{heads}; {then}", flush=True)
    if finetune:
        registry.set_backbone_trainable(model, True)
        compile_model(model, t.finetune_learning_rate, t.label_smoothing)
        callbacks = _callbacks(config, run_dir, t.epochs, done, learning_rate=t.finetune_learning_rate,
                               epochs=finetune, records=records)
        for key, values in _history(model.fit(epochs=finetune, verbose=0, callbacks=callbacks,
                                              **_fit_args(train_ds, eval_ds, even))).items():
            history.setdefault(key, []).extend(values)
    return model, history


def train_model(config: PipelineConfig, tft_output: tft.TFTransformOutput, train_shards: CanonicalShards,
                eval_shards: CanonicalShards, run_dir: str, plan: Optional[distribute.Plan] = None,
                embeddings_store: Optional[embeddings.SegmentStore] = None,
                content_ids: Optional[dict[str, str]] = None,
                start: warm_start.Start = warm_start.Start(reason="no base model given")
                ) -> tuple[keras.Model, dict[str, list[float]], warm_start.Start]:
    """Build the configured family and fit it (``run_fn`` without its MLflow run or export), in ``plan``'s scope,
    seeds first: a seed repeats a run (across replicas up to the reduction order's last bits). Returns the model,
    its history and how it started: ``start`` (warm_start.decide), or cold when the champion's weights do not fit."""
    plan = plan or distribute.make_plan(config.train.strategy)
    print(f"[train] {plan.describe(config.train.batch_size)}", flush=True)
    distribute.require_precision(config.train.mixed_precision)
    distribute.set_precision(config.train.mixed_precision)
    keras.utils.set_random_seed(config.train.seed)
    stats = preprocessing.normalisation_stats(tft_output, config)
    mine = {"shard_index": plan.cluster.index, "num_shards": plan.cluster.workers}
    train_ds = make_dataset(train_shards, tft_output, config, training=True,
                            gain_per_db=augment.gain_scale(config.features, stats.std),
                            static_shapes=plan.static_shapes, **mine)
    eval_ds = make_dataset(eval_shards, tft_output, config, training=False, **mine)
    even = EvenSteps.of(train_shards, eval_shards, config.train.batch_size) if plan.cluster.workers > 1 else None
    if even:
        print(f"[train] {even.train} steps per epoch on every worker ({even.eval} eval steps)", flush=True)
    with plan.strategy.scope():
        shape = model_input_shape(tft_output, config)
        model = registry.build_model(config, shape, input_stats=(stats.mean, stats.std))
        print(f"[train] {config.train.model} on {'+'.join(features.model_inputs(config.features))} {shape}, "
              f"{model.count_params():,} parameters"
              f"{'' if config.train.mixed_precision == 'none' else ', ' + model.dtype_policy.name}", flush=True)
        start, model, warm_heads = warm_start.load(model, config, start)
        config = warm_start.with_budget(config, start)
        print(f"[train] {start.describe()}", flush=True)
        weights = None
        if config.train.class_balance > 0:
            counts = train_class_counts(train_shards, tft_output, len(config.genres))
            weights = class_weights(counts, config.train.class_balance)
            print("[train] class weights (train segments): " + ", ".join(
                f"{g} {w:.2f} ({n})" for g, w, n in zip(config.genres, weights, counts)), flush=True)
        # Each worker embeds its own shards once, outside the replicas; the heads then train under the strategy.
        probe_train_ds = (make_dataset(train_shards, tft_output, config, training=False, **mine)
                          if registry.has_pretrained_backbone(config) else None)
        model, history = fit(model, train_ds, eval_ds, config, run_dir, probe_train_ds, weights, even,
                             stored=_stored_embeddings(embeddings_store, model, tft_output, train_shards, eval_shards,
                                                       config, mine, run_dir, content_ids),
                             warm_heads=warm_heads)
    if plan.name != "one":
        # Every worker reads the weights (BN statistics by a collective); the chief evaluates and exports the copy.
        model = copy_model(model)
    return model, history, start


def _stored_embeddings(store: Optional[embeddings.SegmentStore], model: keras.Model, tft_output: tft.TFTransformOutput,
                       train_shards: CanonicalShards, eval_shards: CanonicalShards, config: PipelineConfig,
                       mine: dict[str, int], run_dir: str,
                       content_ids: Optional[dict[str, str]] = None) -> Optional[dict[str, tf.data.Dataset]]:
    """A one-worker run of heads on a frozen body: the body embeds only the segments ``store`` lacks, and the
    splits' embeddings are gathered from it. None otherwise (workers embed their own shards)."""
    if (store is None or mine["num_shards"] != 1 or config.train.max_steps
            or not registry.has_pretrained_backbone(config)):
        return None
    splits = {name: embeddings.read_split(shards, tft_output, content_ids, store.salt)
              for name, shards in (("train", train_shards), ("eval", eval_shards))}
    embedded = embeddings.embed_missing(
        store, registry.split_backbone(model)[0], list(splits.values()),
        lambda s: make_dataset(s, tft_output, config, training=False, with_track_ids=True), "train")
    with tf.io.gfile.GFile(os.path.join(run_dir, FROZEN_BODY_FILE), "w") as f:  # for the run summary
        json.dump({"embedded": embedded, "segments": sum(len(split.keys) for split in splits.values())}, f)
    return {name: embeddings.write_gathered(store, split, len(config.genres),
                                            os.path.join(run_dir, "embeddings", f"{name}.tfrecord"))
            for name, split in splits.items()}


def split_shards(tft_output: tft.TFTransformOutput, config: PipelineConfig, scratch_dir: str, min_shards: int = 1,
                 **files: list[str] | str) -> dict[str, CanonicalShards]:
    """split name -> its canonical shards under ``scratch_dir``/<split>, for ``split=file pattern`` pairs (TFX's
    train_files and eval_files): the live data's every span (models/live_examples.py)."""
    def current() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {kind: (s.mean, s.std) for kind, s in preprocessing.zscored_stats(tft_output, config).items()}

    return {split: write_shards(live_examples.read(pattern, split, current), tft_output,
                                os.path.join(scratch_dir, split), min_shards=min_shards)
            for split, pattern in files.items()}


def scratch_dir_for(model_run_dir: str) -> str:
    """Where the Trainer writes its shards and embeddings: in the run directory when that is local, else a local
    temporary folder (a shard pass over a remote file system is slow). :func:`run_fn` removes it at the end."""
    if "://" in model_run_dir:
        return tempfile.mkdtemp(prefix="trainer-scratch-")
    return os.path.join(model_run_dir, "scratch")


def run_fn(fn_args: FnArgs) -> None:
    """Train the configured model family and export it with its serving signatures. The strategy comes first;
    non-chief workers use folders of their own and export to a temporary one (every worker takes part in saving)."""
    config = PipelineConfig.from_json(fn_args.custom_config["pipeline_config"])
    # The Tuner's best settings when it ran (--tune), the preset's otherwise.
    tuned = hyperparameters.chosen(fn_args.hyperparameters)
    config = hyperparameters.apply(config, tuned)
    if tuned:
        print(f"[train] tuned settings: {hyperparameters.describe(tuned)}", flush=True)
    plan = distribute.make_plan(config.train.strategy)
    run_dir = fn_args.model_run_dir if plan.cluster.is_chief else tempfile.mkdtemp(prefix="trainer-worker-")
    scratch = scratch_dir_for(run_dir)
    try:
        _train_and_export(fn_args, config, plan, run_dir, scratch, tuned)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not plan.cluster.is_chief:
            shutil.rmtree(run_dir, ignore_errors=True)


def _train_and_export(fn_args: FnArgs, config: PipelineConfig, plan: distribute.Plan, run_dir: str,
                      scratch: str, tuned: Optional[dict] = None) -> None:
    import mlflow
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    chief = plan.cluster.is_chief
    name = f"{config.train.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    with tracking.training_run(config, run_name=name) if chief else contextlib.nullcontext() as run:
        if chief:  # the chief's MLflow run, tagged with the Tuner's choice beside the parameters that hold it
            print(f"[train] MLflow run {run.info.run_id}", flush=True)
            if tuned:
                mlflow.set_tag("tuned", hyperparameters.describe(tuned))
        # At least a shard per worker; every worker sorts the split alike and reads only its own shards.
        shards = split_shards(tft_output, config, scratch, min_shards=plan.cluster.workers,
                              train=fn_args.train_files, eval=fn_args.eval_files)
        store = embeddings.store_for(config, tft_output, fn_args.transform_graph_path, scratch, "train")
        model_dir = os.path.dirname(fn_args.serving_model_dir)
        model, history, start = train_model(
            config, tft_output, shards["train"], shards["eval"], run_dir, plan, embeddings_store=store,
            content_ids=live_examples.content_ids(fn_args.train_files),
            start=warm_start.decide(config, fn_args.base_model, model_dir))
        if not chief:
            with tempfile.TemporaryDirectory(prefix="trainer-worker-export-", ignore_cleanup_errors=True) as export_dir:
                export_model(model, tft_output, config, export_dir)
            return
        accumulator = metrics.ClipAccumulator()
        eval_ds = make_dataset(shards["eval"], tft_output, config, training=False, with_track_ids=True)
        for x, y, track in eval_ds:
            accumulator.add(track.numpy(), model(x, training=False).numpy(), np.argmax(y.numpy(), axis=1))
        scores = accumulator.score()
        mlflow.log_metrics({**scores.as_dict("eval_"), "epochs_trained": float(len(history.get("loss", [])))})
        mlflow.set_tag(warm_start.PROPERTY, start.describe())
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(plots.learning_curves_png(history, os.path.join(tmp, "learning_curves.png"),
                                                          f"{config.train.model}: learning curves"), "plots")
            mlflow.log_artifact(plots.confusion_matrix_png(
                scores.clip_confusion, config.genres, os.path.join(tmp, "eval_clip_confusion.png"),
                f"{config.train.model}: eval split, clip level"), "plots")
        print(f"[train] eval split: segment accuracy {scores.segment_accuracy:.3f}, "
              f"clip accuracy {scores.clip_accuracy:.3f} ({scores.clips} clips)", flush=True)
        export_model(model, tft_output, config, fn_args.serving_model_dir)
        warm_start.save(model, config, start, model_dir)  # what a later run starts from
        mlflow.log_artifacts(fn_args.serving_model_dir, "saved_model")
        with tf.io.gfile.GFile(os.path.join(model_dir, tracking.RUN_ID_FILE), "w") as f:
            f.write(run.info.run_id)


def export_model(model: keras.Model, tft_output: tft.TFTransformOutput, config: PipelineConfig, path: str) -> None:
    """signatures.export of ``model``; a mixed-precision model as its float32 copy, so every export is float32."""
    if config.train.mixed_precision != "none":
        model = copy_model(model, float32=True)
    signatures.export(model, tft_output, config, path)


def copy_model(model: keras.Model, float32: bool = False) -> keras.Model:
    """The same layers and weights as a plain model, outside any strategy; ``float32``: every dtype policy float32,
    because musicnn's serving body and the transform layer are float32 graphs (variables stay float32 anyway)."""
    config = _float32_config(model.get_config()) if float32 else model.get_config()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32" if float32 else previous)
    try:
        copy = model.__class__.from_config(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy


def _float32_config(value):
    """A layer or model config with each dtype policy replaced by float32."""
    if isinstance(value, dict):
        if value.get("class_name") in ("Policy", "DTypePolicy") and "name" in value.get("config", {}):
            return "float32"
        return {k: ("float32" if k == "dtype" and isinstance(v, str) and v.startswith("mixed_") else
                    _float32_config(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    return value
