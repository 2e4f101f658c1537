"""models/training.py: callbacks per schedule and stopping rule, the VGG's epoch budget (no real training)."""
from __future__ import annotations

import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import canonical_order, training
from tests.testkit.training_inputs import segments_output, tiny_shards, train_config, write_segments


def _of(callbacks, cls):
    return [c for c in callbacks if isinstance(c, cls)]


def test_early_stopping_follows_monitor_and_patience(tmp_path):
    callbacks = training._callbacks(train_config(early_stopping_monitor="val_accuracy", early_stopping_patience=7),
                                    str(tmp_path), 30, 0, learning_rate=1e-3, epochs=30)
    [stop] = _of(callbacks, keras.callbacks.EarlyStopping)
    assert (stop.monitor, stop.patience, stop.restore_best_weights) == ("val_accuracy", 7, True)
    assert stop.monitor_op == np.greater
    [checkpoint] = _of(callbacks, keras.callbacks.ModelCheckpoint)
    assert checkpoint.monitor == "val_accuracy"
    # The MLflow logger comes last, so it sees the learning rate the schedules add to the logs.
    assert isinstance(callbacks[-1], training.MlflowEpochLogger)

    no_stop = training._callbacks(train_config(early_stopping_patience=None), str(tmp_path), 30, 0,
                                  learning_rate=1e-3, epochs=30)
    assert not _of(no_stop, keras.callbacks.EarlyStopping)


def test_without_records_only_the_training_rules_remain(tmp_path):
    """An average's extra heads: early stopping and the schedule, no checkpoint, TensorBoard or MLflow steps."""
    config = train_config(lr_schedule="plateau", early_stopping_patience=3)
    callbacks = training._callbacks(config, str(tmp_path), 20, 0, learning_rate=1e-3, epochs=20, records=False)
    assert sorted(type(c).__name__ for c in callbacks) == ["EarlyStopping", "ReduceLROnPlateau"]
    recorded = training._callbacks(config, str(tmp_path), 20, 0, learning_rate=1e-3, epochs=20)
    assert {type(c) for c in recorded} - {type(c) for c in callbacks} == {
        keras.callbacks.ModelCheckpoint, keras.callbacks.TensorBoard, training.MlflowEpochLogger}


def test_learning_rate_schedules(tmp_path):
    def schedules(**changes):
        callbacks = training._callbacks(train_config(**changes), str(tmp_path), 20, 0, learning_rate=2e-3, epochs=20)
        return (_of(callbacks, keras.callbacks.ReduceLROnPlateau),
                _of(callbacks, keras.callbacks.LearningRateScheduler))

    assert schedules(lr_schedule="constant") == ([], [])
    [plateau], [] = schedules(lr_schedule="plateau", reduce_lr_patience=2, reduce_lr_factor=0.25)
    assert (plateau.monitor, plateau.patience, plateau.factor) == ("val_loss", 2, 0.25)
    [], [cosine] = schedules(lr_schedule="cosine")
    rates = [cosine.schedule(epoch) for epoch in range(20)]
    assert rates[0] == pytest.approx(2e-3) and rates[10] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates, rates[1:])) and 0 < rates[-1] < 2e-5
    with pytest.raises(ValueError, match="lr_schedule"):
        schedules(lr_schedule="step")
    with pytest.raises(ValueError, match="early_stopping_monitor"):
        schedules(early_stopping_monitor="loss")


def test_cosine_schedule_sets_the_optimizer_rate_each_epoch(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(10, activation="softmax")])
    training.compile_model(model, 1e-2)
    x, y = np.zeros((8, 3), "f"), np.eye(10, dtype="f")[np.arange(8)]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    callbacks = [c for c in training._callbacks(train_config(lr_schedule="cosine", early_stopping_patience=None),
                                                str(tmp_path), 4, 0, learning_rate=1e-2, epochs=4)
                 if not isinstance(c, training.MlflowEpochLogger)]  # no MLflow run here
    history = model.fit(ds, validation_data=ds, epochs=4, verbose=0, callbacks=callbacks)
    assert history.history["lr"] == pytest.approx([1e-2, 1e-2 * 0.5 * (1 + np.cos(np.pi / 4)), 5e-3,
                                                   1e-2 * 0.5 * (1 + np.cos(3 * np.pi / 4))], rel=1e-5)


def test_learnt_needs_the_bar_on_the_last_epochs_in_a_row():
    assert training.learnt([0.5, 0.96, 0.97], 0.95)
    assert not training.learnt([0.96, 0.9, 0.97], 0.95)
    assert not training.learnt([0.99], 0.95)  # one epoch is not a streak
    assert not training.learnt([0.96, float("nan")], 0.95)


def test_a_learnt_data_set_stops_training_and_only_with_a_bar(tmp_path, capsys):
    x = np.eye(10, dtype="f")[np.arange(40) % 10]  # ten separable classes: learnt in a few epochs
    ds = tf.data.Dataset.from_tensor_slices((x, x)).batch(10)

    def epochs_run(**changes) -> int:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10, activation="softmax")])
        training.compile_model(model, 0.1)
        callbacks = [c for c in training._callbacks(train_config(early_stopping_patience=None, **changes), str(tmp_path),
                                                    50, 0, learning_rate=0.1, epochs=50)
                     if not isinstance(c, training.MlflowEpochLogger)]  # no MLflow run here
        history = model.fit(ds, validation_data=ds, epochs=50, verbose=0, callbacks=callbacks)
        return len(history.history["loss"])

    assert epochs_run() == 50
    stopped = epochs_run(stop_at_eval_accuracy=0.95)
    assert 2 <= stopped < 50
    assert "stopping here (the data set is learnt" in capsys.readouterr().out


class _FakeModel:
    """Records the fine-tuning call of training.fit; the head phase is patched out."""

    def __init__(self):
        self.fit_epochs = []

    def fit(self, *args, epochs, **kwargs):
        self.fit_epochs.append(epochs)
        return SimpleNamespace(history={"loss": [0.5] * epochs})


def test_a_head_that_learnt_the_data_set_leaves_no_fine_tuning(monkeypatch, tmp_path):
    monkeypatch.setattr(training, "fit_heads_on_embeddings",
                        lambda model, probe, eval_ds, config, run_dir, max_epochs, weights=None, even=None, records=True, stored=None,
                        warm_heads=(): (model, {"loss": [1.0] * 3, "val_accuracy": [0.8, 0.96, 0.97]}))
    model = _FakeModel()
    training.fit(model, None, None, train_config("vgg", epochs=30, frozen_epochs=20, stop_at_eval_accuracy=0.95),
                 str(tmp_path))
    assert model.fit_epochs == []


@pytest.mark.parametrize("epochs, frozen, head_ran, finetune", [
    (30, 20, 9, 21),    # the head early-stopped: fine-tuning gets its 11 unused epochs too
    (30, 20, 20, 10),   # the head used all its epochs: epochs - frozen_epochs, as before
    (20, 20, 12, 0),    # epochs <= frozen_epochs: the head alone
    (5, 0, 0, 5),       # no frozen epochs (a warm start of a fine-tuned champion): no head phase, fine-tuning alone
])
def test_vgg_fine_tuning_gets_the_epochs_the_head_left(monkeypatch, tmp_path, epochs, frozen, head_ran, finetune):
    heads_fitted = []
    monkeypatch.setattr(training, "fit_heads_on_embeddings",
                        lambda model, probe, eval_ds, config, run_dir, max_epochs, weights=None, even=None, records=True, stored=None,
                        warm_heads=(): heads_fitted.append(max_epochs) or (model, {"loss": [1.0] * head_ran}))
    monkeypatch.setattr(training.registry, "set_backbone_trainable", lambda model, trainable: None)
    monkeypatch.setattr(training, "compile_model", lambda *args, **kwargs: None)
    model = _FakeModel()
    _, history = training.fit(model, None, None, train_config("vgg", epochs=epochs, frozen_epochs=frozen), str(tmp_path))
    assert model.fit_epochs == ([finetune] if finetune else [])
    assert len(history["loss"]) == head_ran + finetune
    assert heads_fitted == ([min(epochs, frozen)] if frozen else [])


def test_class_weights_balance_the_classes_and_keep_the_mean_loss_scale():
    counts = np.array([30, 10, 0, 60])
    balanced = training.class_weights(counts, 1.0)
    assert balanced[2] == 0.0  # no examples: never used
    np.testing.assert_allclose(counts * balanced, [100 / 3, 100 / 3, 0, 100 / 3], rtol=1e-6)  # every class weighs the same
    assert float((counts * balanced).sum() / counts.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(training.class_weights(counts, 0.0), [1, 1, 0, 1])
    mild = training.class_weights(counts, 0.5)
    assert balanced[1] > mild[1] > 1.0 > mild[3] > balanced[3]


def test_train_class_counts_reads_the_labels(tmp_path):
    path = str(tmp_path / "part-0.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for label in [0, 3, 3, 1, 3]:
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))})).SerializeToString())
    tft_output = SimpleNamespace(transformed_feature_spec=lambda: {"label": tf.io.FixedLenFeature([], tf.int64)})
    records = lambda: tf.data.TFRecordDataset(path, compression_type="GZIP")  # noqa: E731 - the shard's records
    shards = SimpleNamespace(records=records)
    np.testing.assert_array_equal(training.train_class_counts(shards, tft_output, 5), [1, 1, 0, 3, 0])


def test_fit_weights_each_training_example_by_its_class(monkeypatch, tmp_path):
    """At learning rate 0 the reported loss is the class-weighted mean; the eval loss stays unweighted."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = np.array([0] * 12 + [1] * 4)  # imbalanced: 3 to 1
    x = rng.standard_normal((16, 3)).astype("f")
    y = np.eye(2, dtype="f")[labels]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    config = train_config(class_balance=1.0, epochs=1, learning_rate=0.0, early_stopping_patience=None)
    config.genres = ("a", "b")
    weights = training.class_weights(np.bincount(labels), config.train.class_balance)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    monkeypatch.setattr(training.MlflowEpochLogger, "on_epoch_end", lambda self, epoch, logs=None: None)
    _, history = training.fit(model, ds, ds, config, str(tmp_path), weights=weights)
    per_example = keras.losses.categorical_crossentropy(y, model(x)).numpy()
    assert history["loss"][0] == pytest.approx(float(np.mean(weights[labels] * per_example)), rel=1e-4)
    assert history["val_loss"][0] == pytest.approx(float(np.mean(per_example)), rel=1e-4)
    assert history["loss"][0] != pytest.approx(history["val_loss"][0], rel=1e-2)


@pytest.mark.parametrize("family", ["musicnn", "lstm"])
def test_heads_train_apart_and_the_model_answers_their_mean(family, monkeypatch, tmp_path, capsys):
    """--heads 3 on a pretrained family: two extra heads from their own seeds, each stopped on its own eval
    loss; the returned model is the body, then the mean of the three heads' probabilities, and it survives
    a save and reload as models/signatures.export saves it. Random weights (pretrained=False): the test is
    the wiring, not the checkpoint."""
    from models import lstm, musicnn
    config = train_config(family, heads=3, epochs=2, frozen_epochs=2, batch_size=8)
    config.genres = ("a", "b", "c")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, musicnn.FRAMES, musicnn.MELS)).astype("f")
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="f")[np.arange(12) % 3])).batch(8)
    monkeypatch.setattr(training.MlflowEpochLogger, "on_epoch_end", lambda self, epoch, logs=None: None)
    build = musicnn.build_musicnn if family == "musicnn" else lstm.build_lstm
    model = build((musicnn.FRAMES, musicnn.MELS), 3, config.train, pretrained=False)
    before = model(x, training=False).numpy()

    averaged, history = training.fit(model, ds, ds, config, str(tmp_path), probe_train_ds=ds)

    out = capsys.readouterr().out
    assert "head 2/3: 2 epochs" in out and "head 3/3: 2 epochs" in out and "3 heads averaged" in out, out
    assert averaged is not model and averaged.name == family and len(history["loss"]) == 2
    # The first head's checkpoint and TensorBoard logs are the run's; the extra heads write none.
    assert (tmp_path / "checkpoints" / "best.weights.h5").is_file() and list(tmp_path.glob("train/events.*"))
    assert not [p for k in (2, 3) for p in (tmp_path / f"head-{k}").rglob("*") if p.is_file()]
    heads = [averaged.get_layer(f"head_{i}") for i in (1, 2, 3)]
    outputs = [w.numpy() for w in heads[0].trainable_weights], [w.numpy() for w in heads[1].trainable_weights]
    assert not any(np.allclose(a, b) for a, b in zip(*outputs))  # different seeds, different heads
    assert not np.allclose(model(x, training=False).numpy(), before)  # the model's own head trained (head_1)
    embedding_layer = musicnn.EMBEDDING if family == "musicnn" else lstm.FRONT_END_OUT
    body = keras.Model(averaged.input, averaged.get_layer(embedding_layer).output)
    embeddings = body(x, training=False)
    mean = np.mean([head(embeddings, training=False).numpy() for head in heads], axis=0)
    answer = averaged(x, training=False).numpy()
    np.testing.assert_allclose(answer, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(answer.sum(axis=1), 1.0, rtol=1e-5)
    averaged.save(tmp_path / "saved", save_format="tf", save_traces=False)
    reloaded = keras.models.load_model(tmp_path / "saved", compile=False)
    np.testing.assert_allclose(reloaded(x, training=False).numpy(), answer, atol=1e-6)


def test_one_head_returns_the_model_itself(monkeypatch, tmp_path):
    from models import musicnn
    config = train_config("musicnn", heads=1, epochs=1, frozen_epochs=1, batch_size=8)
    config.genres = ("a", "b")
    x = np.random.default_rng(1).standard_normal((4, musicnn.FRAMES, musicnn.MELS)).astype("f")
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(2, dtype="f")[[0, 1, 0, 1]])).batch(4)
    monkeypatch.setattr(training.MlflowEpochLogger, "on_epoch_end", lambda self, epoch, logs=None: None)
    model = musicnn.build_musicnn((musicnn.FRAMES, musicnn.MELS), 2, config.train, pretrained=False)
    trained, history = training.fit(model, ds, ds, config, str(tmp_path), probe_train_ds=ds)
    assert trained is model and len(history["loss"]) == 1
    assert not (tmp_path / "embeddings").exists()  # the embeddings' files go once the heads are trained


def test_the_trainer_scratch_is_local(tmp_path):
    """Shards and embeddings go under a local run directory, or a local temporary folder for a remote one."""
    assert training.scratch_dir_for(str(tmp_path)) == str(tmp_path / "scratch")
    remote = training.scratch_dir_for("gs://bucket/Trainer/model_run/7")
    try:
        assert "://" not in remote and tf.io.gfile.isdir(remote)
    finally:
        tf.io.gfile.rmtree(remote)


def test_a_seed_repeats_training_batches_whatever_order_transform_wrote(tmp_path):
    """The same examples sharded and ordered two ways, streamed from canonical shards cut two ways, give the
    same shuffled, augmented batches."""
    config = train_config("cnn", batch_size=4)
    kind, shape = config.features.kind, (32, 16)
    segments = [(f"blues.{t:05d}", i, t % 3) for t in range(6) for i in range(4)]
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    write_segments(first / "part-0.gz", segments[:12], kind, shape)
    write_segments(first / "part-1.gz", segments[12:], kind, shape)
    reordered = segments[::-1][1::2] + segments[::-1][0::2]
    for k in range(3):
        write_segments(second / f"part-{k}.gz", reordered[k::3], kind, shape)
    tft_output = segments_output(kind, shape)

    def stored_tracks(root):
        spec = {"track_id": tf.io.FixedLenFeature([], tf.string)}
        return [tf.io.parse_single_example(r, spec)["track_id"].numpy()
                for r in tf.data.TFRecordDataset(sorted(map(str, root.glob("*.gz"))), compression_type="GZIP")]

    assert stored_tracks(first) != stored_tracks(second)  # the files really differ in order
    one_shards = canonical_order.write_shards(str(first / "*.gz"), tft_output, str(tmp_path / "shards-1"))
    other_shards = canonical_order.write_shards(str(second / "*.gz"), tft_output, str(tmp_path / "shards-2"),
                                                max_shard_bytes=20_000)
    assert len(one_shards.paths) == 1 and len(other_shards.paths) > 3  # cut into shards two ways

    def batches(shards):
        keras.utils.set_random_seed(0)
        ds = training.make_dataset(shards, tft_output, config, training=True)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    one, other = batches(one_shards), batches(other_shards)
    assert len(one) == len(other) == 6
    for (x1, y1), (x2, y2) in zip(one, other):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    unshuffled = [y for _, y in training.make_dataset(one_shards, tft_output, config, training=False)]
    assert not all(np.array_equal(a, b) for a, (_, b) in zip(unshuffled, one))  # and training did shuffle


def test_a_worker_reads_its_own_shards(tmp_path):
    """shard_index/num_shards: the workers' plain datasets together hold every segment once."""
    config = train_config("cnn", batch_size=4)
    tft_output, shards = tiny_shards(tmp_path, "rock", 8, 3, config.features.kind, (32, 16), min_shards=2)
    assert len(shards.paths) >= 2

    def tracks(**worker):
        ds = training.make_dataset(shards, tft_output, config, training=False, with_track_ids=True, **worker)
        return sorted(t for _, _, batch in ds for t in batch.numpy())

    workers = [tracks(shard_index=i, num_shards=2) for i in range(2)]
    assert all(workers) and sorted(workers[0] + workers[1]) == tracks()


def test_heads_on_stored_embeddings_train_as_on_a_body_pass_and_a_later_run_embeds_nothing(monkeypatch, tmp_path,
                                                                                          capsys):
    """A one-worker run with an embeddings store (models/embeddings.py): the heads train exactly as on a body pass
    of their own; the first run embeds every segment into the store, a later run none."""
    from models import embeddings, musicnn
    config = train_config("musicnn", heads=2, epochs=2, frozen_epochs=2, batch_size=4)
    config.genres = ("a", "b", "c")
    shape = (musicnn.FRAMES, musicnn.MELS)
    (tmp_path / "train").mkdir(), (tmp_path / "eval").mkdir()
    tft_output, train = tiny_shards(tmp_path / "train", "rock", 4, 2, "log_mel", shape)
    _, eval_ = tiny_shards(tmp_path / "eval", "jazz", 2, 2, "log_mel", shape)
    train_ds, eval_ds = (training.make_dataset(s, tft_output, config, training=False) for s in (train, eval_))
    x = np.concatenate([batch.numpy() for batch, _ in train_ds])
    monkeypatch.setattr(training.MlflowEpochLogger, "on_epoch_end", lambda self, epoch, logs=None: None)
    store = embeddings.SegmentStore(str(tmp_path / "store"), salt="transform_graph/1")

    def trained(store):
        keras.utils.set_random_seed(7)
        model = musicnn.build_musicnn(shape, 3, config.train, pretrained=False)
        run_dir = tempfile.mkdtemp(dir=tmp_path)
        stored = training._stored_embeddings(store, model, tft_output, train, eval_, config,
                                             {"shard_index": 0, "num_shards": 1}, run_dir)
        result, _ = training.fit(model, train_ds, eval_ds, config, run_dir, probe_train_ds=train_ds, stored=stored)
        return result(x, training=False).numpy()

    answers = trained(None)
    np.testing.assert_allclose(trained(store), answers, rtol=1e-4, atol=1e-5)
    assert "frozen body: 12 of 12 segments to embed (0 already in the store" in capsys.readouterr().out
    np.testing.assert_allclose(trained(embeddings.SegmentStore(store.root, store.salt)), answers, rtol=1e-4, atol=1e-5)
    assert "frozen body: 0 of 12 segments to embed (12 already in the store" in capsys.readouterr().out
