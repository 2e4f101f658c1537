"""TFX Trainer entry point (`run_fn`): input pipeline, fitting, export, MLflow.

Input pipeline (per split): the transformed TFRecords sorted into shard files in a canonical
order on local disk (models/canonical_order.py) and streamed from there, shuffled, batched, then
parsed and augmented whole batches in parallel (batching before map turns thousands of tiny parse
calls into a few large ones), and prefetched. Validation uses the `eval` split; the `test` split is
never seen here. Memory is bounded by the shuffle buffer and a few batches, not by the split.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from typing import Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from models import augment, metrics, plots, preprocessing, registry, signatures, tracking, transfer
from models.canonical_order import CanonicalShards, matching_files, write_shards
from models.embeddings import embed
from pipeline.config import STOP_AFTER_PASSES, PipelineConfig

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_BUFFER = 4096


def _parse_spec(tft_output: tft.TFTransformOutput, kind: str) -> dict[str, tf.io.FixedLenFeature]:
    spec = tft_output.transformed_feature_spec()
    return {kind: spec[kind], "label": spec["label"], "track_id": spec["track_id"]}


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


def make_dataset(shards: CanonicalShards, tft_output: tft.TFTransformOutput, config: PipelineConfig,
                 training: bool, with_track_ids: bool = False,
                 gain_per_db: Optional[np.ndarray] = None,
                 shard_index: int = 0, num_shards: int = 1) -> tf.data.Dataset:
    """(features, one-hot labels) batches of a split's canonical shards (canonical_order.write_shards);
    (features, labels, track_ids) when with_track_ids.

    ``gain_per_db`` (augment.gain_scale) turns on the random-gain augmentation in training.
    ``shard_index``, ``num_shards``: this worker's shards when several workers share the split.
    Several datasets over one split (augmented and plain) read the same shard files.
    """
    kind = config.features.kind
    spec = _parse_spec(tft_output, kind)
    ds = shards.records(shard_index, num_shards)
    if training:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=config.train.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.train.batch_size, drop_remainder=False)

    def parse(serialized: tf.Tensor):
        parsed = tf.io.parse_example(serialized, spec)
        labels = tf.one_hot(parsed["label"], len(config.genres))
        if with_track_ids:
            return parsed[kind], labels, parsed["track_id"]
        return parsed[kind], labels

    # deterministic=True: batches leave the parallel maps in the order they went in; with the
    # canonical order above, a seed repeats a training run on any Transform output of the same
    # examples (out of order, identical settings scored 0.595 and 0.690 on the real test clips).
    ds = ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)
    if training:
        ds = ds.map(lambda x, y: augment.augment_batch(x, y, config.train, gain_per_db),
                    num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE)


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
               learning_rate: float, epochs: int) -> list[keras.callbacks.Callback]:
    """Callbacks of one ``fit`` call of ``epochs`` epochs starting at ``learning_rate``.

    ``total_epochs`` and ``step_offset`` place the call within the whole run (VGG's two phases)
    for the progress line and the MLflow steps.
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
    # Last, so that it logs what the others added to the epoch's logs (the learning rate).
    callbacks.append(MlflowEpochLogger(total_epochs, step_offset))
    if t.stop_at_eval_accuracy is not None:
        callbacks.append(StopWhenPassed(t.stop_at_eval_accuracy))
    return callbacks


def _compile(model: keras.Model, learning_rate: float, label_smoothing: float = 0.0) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])


def fit_head(head: keras.Model, train_embeddings: tf.data.Dataset, eval_embeddings: tf.data.Dataset,
             config: PipelineConfig, run_dir: str, epochs: int, seed: int, weights: Optional[np.ndarray],
             progress: bool) -> dict[str, list[float]]:
    """One head on the embeddings on disk, shuffled by ``seed``; ``progress`` False: no per-epoch lines or
    MLflow steps (the extra heads of an average, which would overwrite the first head's curves)."""
    train = train_embeddings.shuffle(SHUFFLE_BUFFER, seed=seed).batch(config.train.batch_size)
    if weights is not None:
        train = with_class_weights(train, weights)
    callbacks = _callbacks(config, run_dir, config.train.epochs, 0, learning_rate=config.train.learning_rate,
                           epochs=epochs)
    if not progress:
        callbacks = [c for c in callbacks if not isinstance(c, MlflowEpochLogger)]
    _compile(head, config.train.learning_rate, config.train.label_smoothing)
    result = head.fit(train, validation_data=eval_embeddings, epochs=epochs, verbose=0, callbacks=callbacks)
    return {key: [float(v) for v in values] for key, values in result.history.items()}


def fit_heads_on_embeddings(model: keras.Model, probe_train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset,
                            config: PipelineConfig, run_dir: str, epochs: int,
                            weights: Optional[np.ndarray] = None) -> tuple[keras.Model, dict[str, list[float]]]:
    """Frozen phase as a linear probe: embeddings once, then cheap epochs of the head alone.

    Equivalent to training with the body frozen (its batch norms run in inference mode
    either way), minus the body's block dropout, at a fraction of the cost per epoch. The
    embeddings go to files under ``run_dir``/embeddings (models/embeddings.py), removed at the end.
    With ``train.heads`` > 1 the model's own head is joined by fresh copies, each initialised,
    shuffled and dropped out from its own seed and stopped on its own eval loss, and the model
    returned averages their probabilities (transfer.average_heads); otherwise it is ``model``.
    The history is the first head's.
    """
    embeddings_dir = os.path.join(run_dir, "embeddings")
    try:
        return _fit_heads(model, probe_train_ds, eval_ds, config, run_dir, embeddings_dir, epochs, weights)
    finally:
        if tf.io.gfile.exists(embeddings_dir):
            tf.io.gfile.rmtree(embeddings_dir)


def _fit_heads(model: keras.Model, probe_train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset,
               config: PipelineConfig, run_dir: str, embeddings_dir: str, epochs: int,
               weights: Optional[np.ndarray]) -> tuple[keras.Model, dict[str, list[float]]]:
    t = config.train
    body, head = registry.split_backbone(model)
    train_embeddings = embed(body, probe_train_ds, os.path.join(embeddings_dir, "train.tfrecord"))
    eval_embeddings = embed(body, eval_ds, os.path.join(embeddings_dir, "eval.tfrecord")).batch(t.batch_size)
    history = fit_head(head, train_embeddings, eval_embeddings, config, run_dir, epochs, t.seed, weights,
                       progress=True)
    if t.heads <= 1:
        return model, history
    heads = [head]
    for k in range(1, t.heads):
        # Seeds apart from every other run's first head (seed + 1000 k), so seed 43's heads are not seed 42's.
        keras.utils.set_random_seed(t.seed + 1000 * k)
        extra = keras.models.clone_model(head)  # the same layers with freshly initialised weights
        extra_history = fit_head(extra, train_embeddings, eval_embeddings, config,
                                 os.path.join(run_dir, f"head-{k + 1}"), epochs, t.seed + 1000 * k, weights,
                                 progress=False)
        losses = extra_history["val_loss"]
        print(f"[train] head {k + 1}/{t.heads}: {len(losses)} epochs, best eval loss {min(losses):.3f} "
              f"(epoch {losses.index(min(losses)) + 1})", flush=True)
        heads.append(extra)
    return transfer.average_heads(model, body, heads), history


def fit(model: keras.Model, train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset, config: PipelineConfig,
        run_dir: str, probe_train_ds: Optional[tf.data.Dataset] = None,
        weights: Optional[np.ndarray] = None) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train; a pretrained backbone goes in two phases: head(s) on frozen embeddings, then fine-tuning.

    Returns the trained model (a new one when several heads are averaged) and its history.
    ``probe_train_ds`` is the training split without augmentation, for the embeddings. ``weights``
    (:func:`class_weights`) weight each training example's loss by its class; the eval split's loss,
    which early stopping watches, stays unweighted.
    """
    t = config.train
    if weights is not None:
        train_ds = with_class_weights(train_ds, weights)
    if t.max_steps or not registry.has_pretrained_backbone(config):
        _compile(model, t.learning_rate, t.label_smoothing)
        steps = {"steps_per_epoch": t.max_steps} if t.max_steps else {}
        epochs = 1 if t.max_steps else t.epochs
        result = model.fit(train_ds, validation_data=eval_ds, epochs=epochs, verbose=0,
                           callbacks=_callbacks(config, run_dir, epochs, 0, learning_rate=t.learning_rate,
                                                epochs=epochs), **steps)
        return model, {key: [float(v) for v in values] for key, values in result.history.items()}
    frozen = min(t.frozen_epochs, t.epochs)
    model, history = fit_heads_on_embeddings(model, probe_train_ds, eval_ds, config, run_dir, frozen, weights)
    done = len(history.get("loss", []))
    # epochs is the budget of both phases: fine-tuning gets whatever the head left, so a head
    # that early-stops after 9 of its 20 epochs leaves 21 of 30, not 10. epochs <= frozen_epochs
    # means the head alone.
    finetune = t.epochs - done if t.epochs > frozen else 0
    if t.stop_at_eval_accuracy is not None and learnt(history.get("val_accuracy", []), t.stop_at_eval_accuracy):
        finetune = 0  # the head alone has learnt the data set
    import mlflow
    if mlflow.active_run():
        mlflow.log_metric("head_epochs", float(done))
    then = (f"fine-tuning for up to {finetune} epochs" if finetune else
            "no fine-tuning (the head has learnt the data set)" if t.epochs > frozen else
            f"no fine-tuning (--epochs {t.epochs} <= --frozen-epochs {t.frozen_epochs}: the head alone)")
    heads = f"; {t.heads} heads averaged" if t.heads > 1 else ""
    print(f"[train] head: {done} epochs on the frozen body's embeddings{heads}; {then}", flush=True)
    if finetune:
        registry.set_backbone_trainable(model, True)
        _compile(model, t.finetune_learning_rate, t.label_smoothing)
        result = model.fit(train_ds, validation_data=eval_ds, epochs=finetune, verbose=0,
                           callbacks=_callbacks(config, run_dir, t.epochs, done,
                                                learning_rate=t.finetune_learning_rate, epochs=finetune))
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
                run_dir: str) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build the configured family and fit it on the transformed train split (eval: early stopping).

    What ``run_fn`` trains, without its MLflow run or export, so a benchmark can train the same way
    on a Transform output (bench/trials.py). ``train_files``: the train split's transformed files, for
    its class counts; ``*_shards``: the splits in canonical order (:func:`split_shards`). Seeds first:
    a seed repeats a run on the same data.
    """
    keras.utils.set_random_seed(config.train.seed)
    kind = config.features.kind
    stats = preprocessing.normalisation_stats(tft_output, config)
    train_ds = make_dataset(train_shards, tft_output, config, training=True,
                            gain_per_db=augment.gain_scale(config.features, stats.std))
    eval_ds = make_dataset(eval_shards, tft_output, config, training=False)
    model = registry.build_model(config, input_shape(tft_output, kind), input_stats=(stats.mean, stats.std))
    print(f"[train] {config.train.model} on {kind} {input_shape(tft_output, kind)}, "
          f"{model.count_params():,} parameters", flush=True)
    weights = None
    if config.train.class_balance > 0:
        counts = train_class_counts(train_files, tft_output, len(config.genres))
        weights = class_weights(counts, config.train.class_balance)
        print("[train] class weights (train segments): " + ", ".join(
            f"{g} {w:.2f} ({n})" for g, w, n in zip(config.genres, weights, counts)), flush=True)
    probe_train_ds = (make_dataset(train_shards, tft_output, config, training=False)
                      if registry.has_pretrained_backbone(config) else None)
    return fit(model, train_ds, eval_ds, config, run_dir, probe_train_ds, weights)


def split_shards(tft_output: tft.TFTransformOutput, scratch_dir: str,
                 **files: list[str] | str) -> dict[str, CanonicalShards]:
    """split name -> its canonical shards under ``scratch_dir``/<split>, for ``split=file pattern`` pairs."""
    return {split: write_shards(pattern, tft_output, os.path.join(scratch_dir, split))
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
    """Train the configured model family and export it with its serving signatures."""
    scratch = scratch_dir_for(fn_args.model_run_dir)
    try:
        _train_and_export(fn_args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train_and_export(fn_args: FnArgs, scratch: str) -> None:
    config = PipelineConfig.from_json(fn_args.custom_config["pipeline_config"])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    with tracking.training_run(config, run_name=f"{config.train.model}-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        print(f"[train] MLflow run {run.info.run_id}", flush=True)
        shards = split_shards(tft_output, scratch, train=fn_args.train_files, eval=fn_args.eval_files)
        model, history = train_model(config, tft_output, fn_args.train_files, shards["train"], shards["eval"],
                                     fn_args.model_run_dir)
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
        signatures.export(model, tft_output, config, fn_args.serving_model_dir)
        mlflow.log_artifacts(fn_args.serving_model_dir, "saved_model")
        with tf.io.gfile.GFile(os.path.join(os.path.dirname(fn_args.serving_model_dir), tracking.RUN_ID_FILE),
                               "w") as f:
            f.write(run.info.run_id)
