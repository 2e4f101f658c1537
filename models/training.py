"""TFX Trainer entry point (`run_fn`): input pipeline, fitting, export, MLflow.

Input pipeline (per split): the transformed TFRecords sorted into shard files in a canonical
order on local disk (models/canonical_order.py) and streamed from there, shuffled, batched, then
parsed and augmented whole batches in parallel (batching before map turns thousands of tiny parse
calls into a few large ones), and prefetched. Validation uses the `eval` split; the `test` split is
never seen here. Memory is bounded by the shuffle buffer and a few batches, not by the split.

Distribution (models/distribute.py, docs/distributed.md): the model is built and compiled inside the
plan's ``strategy.scope()``; ``train.batch_size`` is the global batch, which tf.distribute splits over
the replicas; each worker reads only its own canonical shards (auto-sharding off: the sharding is done
here); only the chief writes the export that counts, MLflow and the run record.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import time
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from config.settings import STOP_AFTER_PASSES, PipelineConfig
from models import (augment, distribute, embeddings, features, hyperparameters, metrics, plots, preprocessing, registry,
                    signatures, tracking, transfer)
from models.canonical_order import CanonicalShards, matching_files, write_shards

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BUFFER = 4096


def _parse_spec(tft_output: tft.TFTransformOutput, config: PipelineConfig,
                with_track_ids: bool) -> dict[str, tf.io.FixedLenFeature]:
    """What a batch parses: the model's inputs and the label; the string track id only for host-side scoring,
    never for training (no string tensor goes to an accelerator)."""
    spec = tft_output.transformed_feature_spec()
    keys = (*features.model_inputs(config.features), "label", *(("track_id",) if with_track_ids else ()))
    return {key: spec[key] for key in keys}


def train_class_counts(file_pattern: list[str] | str, tft_output: tft.TFTransformOutput,
                       num_classes: int) -> np.ndarray:
    """Examples (segments) per label in the given transformed files, [num_classes] int64.

    One pass over the labels only; the trainer reads the train split's counts for class balancing.
    """
    spec = {"label": tft_output.transformed_feature_spec()["label"]}
    ds = tf.data.TFRecordDataset(matching_files(file_pattern), compression_type="GZIP").batch(1024)
    counts = np.zeros(num_classes, np.int64)
    for batch in ds:
        labels = tf.io.parse_example(batch, spec)["label"].numpy().reshape(-1)
        counts += np.bincount(labels, minlength=num_classes)[:num_classes]
    return counts


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Per-class loss weights count ** -power, scaled so that the mean weight per training example is 1.

    ``power`` 1 gives every class the same total weight (sklearn's "balanced"), 0 leaves the loss as it
    was (all ones), values between are a milder correction. Classes without examples get 0 (never used).
    Balancing by weights rather than by resampling keeps every epoch one pass over the same examples,
    so epochs, schedules and the input pipeline's cache stay as they are.
    """
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
                 training: bool, with_track_ids: bool = False,
                 gain_per_db: Optional[np.ndarray] = None,
                 shard_index: int = 0, num_shards: int = 1, static_shapes: bool = False) -> tf.data.Dataset:
    """(features, one-hot labels) batches of a split's canonical shards (canonical_order.write_shards);
    (features, labels, track_ids) when with_track_ids (host-side scoring only).

    Batches hold ``train.batch_size`` examples, the global batch: under a strategy tf.distribute splits
    each into the replicas' parts. ``gain_per_db`` (augment.gain_scale) turns on the random-gain
    augmentation in training. ``shard_index``, ``num_shards``: this worker's shards when several workers
    share the split; the dataset's auto-sharding is off, since the sharding is done here. ``static_shapes``
    (TPU): training batches of exactly the global batch, the last partial one dropped; a worker's shards
    smaller than one batch are refused (:func:`require_one_batch`). Several datasets over one split
    (augmented and plain) read the same shard files.
    """
    spec = _parse_spec(tft_output, config, with_track_ids)
    if num_shards > 1:
        mine = shards.paths[shard_index::num_shards]
        print(f"[train] worker {shard_index} of {num_shards} reads shards "
              f"{', '.join(os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in mine)}",
              flush=True)
    ds = shards.records(shard_index, num_shards)
    drop_remainder = training and static_shapes
    if drop_remainder:
        require_one_batch(ds, config.train.batch_size, shard_index, num_shards)
    if training:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=config.train.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.train.batch_size, drop_remainder=drop_remainder)

    def parse(serialized: tf.Tensor):
        parsed = tf.io.parse_example(serialized, spec)
        labels = tf.one_hot(parsed["label"], len(config.genres))
        x = features.as_model_input(parsed, config.features)
        if with_track_ids:
            return x, labels, parsed["track_id"]
        return x, labels

    # deterministic=True: batches leave the parallel maps in the order they went in; with the
    # canonical order above, a seed repeats a training run on any Transform output of the same
    # examples (out of order, identical settings scored 0.595 and 0.690 on the real test clips).
    ds = ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)
    # Augmentation feeds training through the body; a model of several inputs trains its heads on the frozen
    # bodies' embeddings of plain batches only (registry refuses fine-tuning it), so it has none.
    if training and not config.features.extra_kinds:
        ds = ds.map(lambda x, y: augment.augment_batch(x, y, config.train, gain_per_db),
                    num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE).with_options(_sharded_by_hand())


def _sharded_by_hand() -> tf.data.Options:
    """Auto-sharding off: each worker's dataset already holds only its own shards."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def require_one_batch(records: tf.data.Dataset, batch_size: int, shard_index: int = 0, num_shards: int = 1) -> None:
    """Refuse a split that static batch shapes would leave empty (fewer records than one global batch).

    Reads at most ``batch_size`` records."""
    found = _count(records.take(batch_size))
    if found < batch_size:
        whose = f"worker {shard_index} of {num_shards}'s share of " if num_shards > 1 else ""
        raise ValueError(
            f"The training split is too small for static batch shapes: {whose}the train split holds {found} "
            f"examples, fewer than one global batch of {batch_size} (--batch-size), and a TPU drops the partial "
            f"batch, so nothing would train. Give a --batch-size of at most {max(found, 1)}, or more data.")


class MlflowEpochLogger(keras.callbacks.Callback):
    """Per-epoch metrics to the active MLflow run, and a progress line people can follow."""

    def __init__(self, total_epochs: int, step_offset: int = 0):
        super().__init__()
        self.total_epochs = total_epochs
        self.step_offset = step_offset
        self.started = time.time()

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
    """Ends ``fit`` once :func:`learnt` holds for the eval accuracies of its epochs.

    Why: a data set that is learnt in a few epochs (the embedded synthetic set) should not pay for a
    budget tuned on real clips (``train.stop_at_eval_accuracy``).
    """

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
    """Callbacks of one ``fit`` call of ``epochs`` epochs starting at ``learning_rate``.

    ``total_epochs`` and ``step_offset`` place the call within the whole run (VGG's two phases)
    for the progress line and the MLflow steps. ``records`` False: none of the callbacks that record the
    training for people (checkpoint, TensorBoard logs, MLflow steps; nothing reads their files back, early
    stopping keeps the best weights in memory): of an average's heads, the first keeps them.
    """
    t = config.train
    if t.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"Unknown lr_schedule {t.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}.")
    if t.early_stopping_monitor not in MONITORS:
        raise ValueError(f"Unknown early_stopping_monitor {t.early_stopping_monitor!r}; choose one of "
                         f"{', '.join(MONITORS)}.")
    monitor, mode = t.early_stopping_monitor, MONITORS[t.early_stopping_monitor]
    callbacks: list[keras.callbacks.Callback] = []
    if t.early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping_patience,
                                                       restore_best_weights=True))
    if records:
        callbacks += [
            keras.callbacks.ModelCheckpoint(os.path.join(run_dir, "checkpoints", "best.weights.h5"),
                                            monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True),
            keras.callbacks.TensorBoard(log_dir=run_dir, update_freq="epoch"),
        ]
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


def _compile(model: keras.Model, learning_rate: float, label_smoothing: float = 0.0, announce: bool = False) -> None:
    """``announce``: a [train] line with what the compiled model holds (:func:`compiled_settings`)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    if announce:
        print(f"[train] compiled: {compiled_settings(model)}", flush=True)


def compiled_settings(model: keras.Model) -> str:
    """The learning rate and label smoothing read back from the compiled model, not from the configuration:
    what a tuned setting changed is visible where it acts."""
    rate = float(keras.backend.get_value(model.optimizer.learning_rate))
    return f"learning rate {rate:g}, label smoothing {model.loss.get_config()['label_smoothing']:g}"


@dataclasses.dataclass(frozen=True)
class EvenSteps:
    """Steps per epoch that every worker of a multi-worker run takes: one pass over the whole split in global
    batches (``ceil(examples / batch)``), each worker cycling through its own shards.

    Why: workers' shards differ in size, and a worker that runs out of batches first is fed empty batches
    by tf.distribute, on which batch normalisation fails (``scale must have the same number of elements
    as the channels of x``); equal steps of full batches keep the workers in step.
    """

    train: int
    eval: int
    batch_size: int

    @classmethod
    def of(cls, train: CanonicalShards, eval_: CanonicalShards, batch_size: int) -> "EvenSteps":
        return cls(math.ceil(count_records(train) / batch_size), math.ceil(count_records(eval_) / batch_size),
                   batch_size)

    def feed(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Full batches without end, from a batched dataset (features, labels[, weights])."""
        return (dataset.unbatch().repeat().batch(self.batch_size, drop_remainder=True)
                .with_options(_sharded_by_hand()))

    def fit_args(self, train: tf.data.Dataset, validation: tf.data.Dataset) -> dict:
        """``model.fit`` keyword arguments for these steps."""
        return {"x": self.feed(train), "validation_data": self.feed(validation), "steps_per_epoch": self.train,
                "validation_steps": self.eval}


def count_records(shards: CanonicalShards) -> int:
    """Examples in every shard of a split (each worker holds them all: it sorted the whole split)."""
    return _count(shards.records())


def _count(records: tf.data.Dataset) -> int:
    """Elements of a dataset, read through once."""
    return int(records.reduce(np.int64(0), lambda n, _: n + 1))


def _fit_args(train: tf.data.Dataset, validation: tf.data.Dataset, even: Optional[EvenSteps]) -> dict:
    return even.fit_args(train, validation) if even else {"x": train, "validation_data": validation}


def fit_head(head: keras.Model, train_embeddings: tf.data.Dataset, eval_embeddings: tf.data.Dataset,
             config: PipelineConfig, run_dir: str, epochs: int, seed: int, weights: Optional[np.ndarray],
             progress: bool, even: Optional[EvenSteps] = None, announce: bool = False) -> dict[str, list[float]]:
    """One head on the embeddings on disk, shuffled by ``seed``; ``progress`` False: no per-epoch lines, MLflow
    steps, checkpoint or TensorBoard logs (the extra heads of an average: their curves would overwrite the first
    head's, and a file write an epoch costs a small head more than its epoch).
    ``even``: a multi-worker run's steps (:class:`EvenSteps`). ``announce``: the compiled settings' line."""
    train = train_embeddings.shuffle(SHUFFLE_BUFFER, seed=seed).batch(
        config.train.batch_size, drop_remainder=distribute.needs_static_shapes()).with_options(_sharded_by_hand())
    if weights is not None:
        train = with_class_weights(train, weights)
    callbacks = _callbacks(config, run_dir, config.train.epochs, 0, learning_rate=config.train.learning_rate,
                           epochs=epochs, records=progress)
    _compile(head, config.train.learning_rate, config.train.label_smoothing, announce=announce)
    result = head.fit(epochs=epochs, verbose=0, callbacks=callbacks, **_fit_args(train, eval_embeddings, even))
    return {key: [float(v) for v in values] for key, values in result.history.items()}


def fit_heads_on_embeddings(model: keras.Model, probe_train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset,
                            config: PipelineConfig, run_dir: str, epochs: int,
                            weights: Optional[np.ndarray] = None,
                            even: Optional[EvenSteps] = None,
                            records: bool = True,
                            stored: Optional[embeddings.Store] = None) -> tuple[keras.Model, dict[str, list[float]]]:
    """Frozen phase as a linear probe: embeddings once, then cheap epochs of the head alone.

    Equivalent to training with the body frozen (its batch norms run in inference mode
    either way), minus the body's block dropout, at a fraction of the cost per epoch. The
    embeddings go to files under ``run_dir``/embeddings (models/embeddings.py), removed at the end.
    With ``train.heads`` > 1 the model's own head is joined by fresh copies, each initialised,
    shuffled and dropped out from its own seed and stopped on its own eval loss, and the model
    returned averages their probabilities (transfer.average_heads); otherwise it is ``model``.
    The history is the first head's. ``records`` False: no progress lines or records of any head (:func:`fit`).
    ``stored``: the store of these splits' embeddings (models/embeddings.py): read instead of a body pass where it
    holds them, written by this body pass where it does not (and kept for later runs).
    """
    embeddings_dir = os.path.join(run_dir, "embeddings")
    try:
        return _fit_heads(model, probe_train_ds, eval_ds, config, run_dir, embeddings_dir, epochs, weights, even,
                          records, stored)
    finally:
        if tf.io.gfile.exists(embeddings_dir):
            tf.io.gfile.rmtree(embeddings_dir)


def _fit_heads(model: keras.Model, probe_train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset,
               config: PipelineConfig, run_dir: str, embeddings_dir: str, epochs: int,
               weights: Optional[np.ndarray],
               even: Optional[EvenSteps], records: bool = True,
               stored: Optional[embeddings.Store] = None) -> tuple[keras.Model, dict[str, list[float]]]:
    t = config.train
    body, head = registry.split_backbone(model)
    if stored is not None:
        if stored.datasets is None:
            stored.datasets = embeddings.embed_into_store(body, {"train": probe_train_ds, "eval": eval_ds}, stored.path)
        train_embeddings, eval_embeddings = stored.datasets["train"], stored.datasets["eval"]
    else:
        train_embeddings = embeddings.embed(body, probe_train_ds, os.path.join(embeddings_dir, "train.tfrecord"))
        eval_embeddings = embeddings.embed(body, eval_ds, os.path.join(embeddings_dir, "eval.tfrecord"))
    eval_embeddings = eval_embeddings.batch(t.batch_size).with_options(_sharded_by_hand())
    history = fit_head(head, train_embeddings, eval_embeddings, config, run_dir, epochs, t.seed, weights,
                       progress=records, even=even, announce=records)
    if t.heads <= 1:
        return model, history
    heads = [head]
    for k in range(1, t.heads):
        # Seeds apart from every other run's first head (seed + 1000 k), so seed 43's heads are not seed 42's.
        keras.utils.set_random_seed(t.seed + 1000 * k)
        extra = keras.models.clone_model(head)  # the same layers with freshly initialised weights
        extra_history = fit_head(extra, train_embeddings, eval_embeddings, config,
                                 os.path.join(run_dir, f"head-{k + 1}"), epochs, t.seed + 1000 * k, weights,
                                 progress=False, even=even)
        losses = extra_history["val_loss"]
        if records:
            print(f"[train] head {k + 1}/{t.heads}: {len(losses)} epochs, best eval loss {min(losses):.3f} "
                  f"(epoch {losses.index(min(losses)) + 1})", flush=True)
        heads.append(extra)
    return transfer.average_heads(model, body, heads), history


def fit(model: keras.Model, train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset, config: PipelineConfig,
        run_dir: str, probe_train_ds: Optional[tf.data.Dataset] = None,
        weights: Optional[np.ndarray] = None,
        even: Optional[EvenSteps] = None, records: bool = True,
        stored: Optional[embeddings.Store] = None) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train; a pretrained backbone goes in two phases: head(s) on frozen embeddings, then fine-tuning.

    Returns the trained model (a new one when several heads are averaged) and its history.
    ``probe_train_ds`` is the training split without augmentation, for the embeddings. ``weights``
    (:func:`class_weights`) weight each training example's loss by its class; the eval split's loss,
    which early stopping watches, stays unweighted. ``even``: a multi-worker run's steps (:class:`EvenSteps`).
    ``records`` False: no progress lines, checkpoints, TensorBoard logs or MLflow steps (a tuning trial's folds).
    ``stored``: the store of the frozen body's embeddings, for the heads (:func:`fit_heads_on_embeddings`).
    """
    t = config.train
    if weights is not None:
        train_ds = with_class_weights(train_ds, weights)
    if t.max_steps or not registry.has_pretrained_backbone(config):
        _compile(model, t.learning_rate, t.label_smoothing, announce=records)
        args = _fit_args(train_ds, eval_ds, even)
        if t.max_steps:
            args["steps_per_epoch"] = t.max_steps
        epochs = 1 if t.max_steps else t.epochs
        result = model.fit(epochs=epochs, verbose=0,
                           callbacks=_callbacks(config, run_dir, epochs, 0, learning_rate=t.learning_rate,
                                                epochs=epochs, records=records), **args)
        return model, {key: [float(v) for v in values] for key, values in result.history.items()}
    frozen = min(t.frozen_epochs, t.epochs)
    model, history = fit_heads_on_embeddings(model, probe_train_ds, eval_ds, config, run_dir, frozen, weights,
                                             even=even, records=records, stored=stored)
    done = len(history.get("loss", []))
    # epochs is the budget of both phases: fine-tuning gets whatever the head left, so a head
    # that early-stops after 9 of its 20 epochs leaves 21 of 30, not 10. epochs <= frozen_epochs
    # means the head alone.
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
        _compile(model, t.finetune_learning_rate, t.label_smoothing)
        result = model.fit(epochs=finetune, verbose=0, **_fit_args(train_ds, eval_ds, even),
                           callbacks=_callbacks(config, run_dir, t.epochs, done,
                                                learning_rate=t.finetune_learning_rate, epochs=finetune,
                                                records=records))
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
    return model, history


def predict_split(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, labels, track ids) over a dataset built with with_track_ids=True.

    Per-segment arrays of one split (a probability per genre, a label and a track id per segment),
    what metrics.score groups into clips; the features themselves stream through a batch at a time.
    """
    probs, labels, tracks = [], [], []
    for x, y, track in dataset:
        probs.append(model(x, training=False).numpy())
        labels.append(np.argmax(y.numpy(), axis=1))
        tracks.append(track.numpy())
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(tracks)


def train_model(config: PipelineConfig, tft_output: tft.TFTransformOutput, train_files: list[str] | str,
                train_shards: CanonicalShards, eval_shards: CanonicalShards,
                run_dir: str, plan: Optional[distribute.Plan] = None,
                embeddings_store: Optional[str] = None) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build the configured family and fit it on the transformed train split (eval: early stopping).

    What ``run_fn`` trains, without its MLflow run or export. ``train_files``: the train split's transformed files, for
    its class counts; ``*_shards``: the splits in canonical order (:func:`split_shards`). ``plan``: the
    strategy (distribute.make_plan(train.strategy) unless given); the model is built, compiled and fitted
    in its scope, under train.mixed_precision's Keras policy. Seeds first: a seed repeats a run on the same
    data (with the default strategy; across replicas the reduction order may differ in the last bits).
    ``embeddings_store``: the store of the frozen body's embeddings of these splits (read, or written once).
    """
    plan = plan or distribute.make_plan(config.train.strategy)
    print(f"[train] {plan.describe(config.train.batch_size)}", flush=True)
    distribute.require_precision(config.train.mixed_precision)
    distribute.set_precision(config.train.mixed_precision)
    keras.utils.set_random_seed(config.train.seed)
    stats = preprocessing.normalisation_stats(tft_output, config)
    mine = {"shard_index": plan.cluster.index, "num_shards": plan.cluster.workers}
    train_ds = make_dataset(train_shards, tft_output, config, training=True,
                            gain_per_db=augment.gain_scale(config.features, stats.std), static_shapes=plan.static_shapes,
                            **mine)
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
        model, history = _fit_in_scope(model, config, tft_output, train_files, train_shards, train_ds, eval_ds,
                                       run_dir, mine, even,
                                       _stored_embeddings(embeddings_store, train_shards, eval_shards, config, mine))
    if plan.name != "one":
        # Every worker reads the weights here, in the same order: a multi-worker model's batch-norm statistics
        # are read by a collective across the workers. The copy is a plain model: evaluating and exporting it
        # on the chief alone needs no other worker.
        model = copy_model(model)
    return model, history


def _fit_in_scope(model: keras.Model, config: PipelineConfig, tft_output: tft.TFTransformOutput,
                  train_files: list[str] | str, train_shards: CanonicalShards, train_ds: tf.data.Dataset,
                  eval_ds: tf.data.Dataset, run_dir: str,
                  mine: dict[str, int], even: Optional[EvenSteps],
                  stored: Optional[embeddings.Store] = None) -> tuple[keras.Model, dict[str, list[float]]]:
    weights = None
    if config.train.class_balance > 0:
        counts = train_class_counts(train_files, tft_output, len(config.genres))
        weights = class_weights(counts, config.train.class_balance)
        print("[train] class weights (train segments): " + ", ".join(
            f"{g} {w:.2f} ({n})" for g, w, n in zip(config.genres, weights, counts)), flush=True)
    # A frozen body's embeddings: each worker embeds its own shards once, on its first device, outside the
    # replicas (docs/distributed.md); the heads then train on them under the strategy.
    probe_train_ds = (make_dataset(train_shards, tft_output, config, training=False, **mine)
                      if registry.has_pretrained_backbone(config) else None)
    return fit(model, train_ds, eval_ds, config, run_dir, probe_train_ds, weights, even, stored=stored)


def _stored_embeddings(store: Optional[str], train_shards: CanonicalShards, eval_shards: CanonicalShards,
                       config: PipelineConfig, mine: dict[str, int]) -> Optional[embeddings.Store]:
    """The store of these splits' embeddings for a one-worker run of a frozen-body family: with its datasets when a
    complete store holds as many segments as the splits, empty (this run's body pass fills it) otherwise. None for
    other runs (a multi-worker run's workers embed their own shards)."""
    if not store or mine["num_shards"] != 1 or not registry.has_pretrained_backbone(config):
        return None
    have = {"train": count_records(train_shards), "eval": count_records(eval_shards)}
    found = embeddings.read_matching_store(store, have)
    if found is None:
        print(f"[train] the frozen body's embeddings go to {store} for later runs", flush=True)
        return embeddings.Store(store)
    print(f"[train] the frozen body's embeddings of {have['train']} train and {have['eval']} eval segments read from "
          f"{store}: no body pass", flush=True)
    return embeddings.Store(store, found)


def split_shards(tft_output: tft.TFTransformOutput, scratch_dir: str, min_shards: int = 1,
                 **files: list[str] | str) -> dict[str, CanonicalShards]:
    """split name -> its canonical shards under ``scratch_dir``/<split>, for ``split=file pattern`` pairs;
    ``min_shards``: at least one per worker of a multi-worker run, each of which sorts the split alike and
    reads only its own shards."""
    return {split: write_shards(pattern, tft_output, os.path.join(scratch_dir, split), min_shards=min_shards)
            for split, pattern in files.items()}


def scratch_dir_for(model_run_dir: str) -> str:
    """Where the Trainer writes its canonical shards and embeddings: a folder of the run directory when that
    is on local disk, else a local temporary folder (a shard pass over a remote file system is slow).
    Either way :func:`run_fn` removes it when training ends: the run directory is an artifact TFX keeps,
    and a second copy of the splits there would outlive the run for nothing (a cached run never reads it)."""
    if "://" in model_run_dir:
        return tempfile.mkdtemp(prefix="trainer-scratch-")
    return os.path.join(model_run_dir, "scratch")


def run_fn(fn_args: FnArgs) -> None:
    """Train the configured model family and export it with its serving signatures.

    The strategy comes first (multi-worker collectives must be set up before TensorFlow runs an op). A
    multi-worker run's other workers train in a run directory and scratch of their own and export to a
    temporary folder they remove (every worker takes part in saving, as TF's multi-worker guide has it).
    """
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


@contextlib.contextmanager
def _chief_run(config: PipelineConfig, is_chief: bool,
               tuned: Optional[dict] = None) -> Iterator[Optional[object]]:
    """The chief's MLflow run, tagged with the ``tuned`` settings if any; None on the other workers, which log
    nothing."""
    import mlflow

    if not is_chief:
        yield None
        return
    with tracking.training_run(config, run_name=f"{config.train.model}-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        print(f"[train] MLflow run {run.info.run_id}", flush=True)
        if tuned:  # the Tuner's choice, beside the parameters that already hold it
            mlflow.set_tag("tuned", hyperparameters.describe(tuned))
        yield run


def _train_and_export(fn_args: FnArgs, config: PipelineConfig, plan: distribute.Plan, run_dir: str,
                      scratch: str, tuned: Optional[dict] = None) -> None:
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    chief = plan.cluster.is_chief
    with _chief_run(config, chief, tuned) as run:
        # At least a shard per worker; every worker sorts the split alike and reads only its own shards.
        shards = split_shards(tft_output, scratch, min_shards=plan.cluster.workers, train=fn_args.train_files,
                              eval=fn_args.eval_files)
        store = embeddings.store_path(config, fn_args.transform_graph_path, fn_args.train_files,
                                      fn_args.eval_files)
        model, history = train_model(config, tft_output, fn_args.train_files, shards["train"], shards["eval"],
                                     run_dir, plan, embeddings_store=store)
        if not chief:
            export_dir = tempfile.mkdtemp(prefix="trainer-worker-export-")
            try:
                export_model(model, tft_output, config, export_dir)
            finally:
                shutil.rmtree(export_dir, ignore_errors=True)
            return
        probs, labels, tracks = predict_split(
            model, make_dataset(shards["eval"], tft_output, config, training=False, with_track_ids=True))
        scores = metrics.score(tracks, probs, labels)
        import mlflow
        mlflow.log_metrics({**scores.as_dict("eval_"), "epochs_trained": float(len(history.get("loss", [])))})
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(plots.learning_curves_png(history, os.path.join(tmp, "learning_curves.png"),
                                                          f"{config.train.model}: learning curves"), "plots")
            mlflow.log_artifact(plots.confusion_matrix_png(
                scores.clip_confusion, config.genres, os.path.join(tmp, "eval_clip_confusion.png"),
                f"{config.train.model}: eval split, clip level"), "plots")
        print(f"[train] eval split: segment accuracy {scores.segment_accuracy:.3f}, "
              f"clip accuracy {scores.clip_accuracy:.3f} ({scores.clips} clips)", flush=True)
        export_model(model, tft_output, config, fn_args.serving_model_dir)
        mlflow.log_artifacts(fn_args.serving_model_dir, "saved_model")
        with tf.io.gfile.GFile(os.path.join(os.path.dirname(fn_args.serving_model_dir), tracking.RUN_ID_FILE),
                               "w") as f:
            f.write(run.info.run_id)


def export_model(model: keras.Model, tft_output: tft.TFTransformOutput, config: PipelineConfig, path: str) -> None:
    """signatures.export of ``model``; a mixed-precision model is exported as its float32 copy
    (:func:`float32_copy`), so the SavedModel computes and answers in float32 as every other export does."""
    if config.train.mixed_precision != "none":
        model = copy_model(model, float32=True)
    signatures.export(model, tft_output, config, path)


def copy_model(model: keras.Model, float32: bool = False) -> keras.Model:
    """The same layers and weights as a plain model, outside any distribution strategy; ``float32``: with every
    dtype policy float32 (a mixed-precision model as float32 layers).

    Why a float32 copy for the export rather than a cast at the signature boundary: musicnn's serving graph
    (musicnn.ServingBody) and the transform layer are float32 graphs; the float32 copy serves them as a model
    trained without mixed precision does, at the weights' own precision (variables stay float32 under a
    mixed policy).
    """
    config = _float32_config(model.get_config()) if float32 else model.get_config()
    weights = model.get_weights()
    previous = keras.mixed_precision.global_policy()
    if float32:
        keras.mixed_precision.set_global_policy("float32")
    try:
        copy = model.__class__.from_config(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(weights)
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
