"""models/embeddings.py: the body embeds only what its store lacks, a segment named by its track's content; a
killed pass keeps the chunks it finished; the pass reports its progress; the run's pairs come back in order."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models import canonical_order, embeddings, training
from tests.testkit.training_inputs import SHAPE, segments_output, train_config, write_segments

OUTPUT = segments_output()
CONFIG = train_config("cnn", batch_size=2)  # the CNN's parsing of KIND: one input, as a frozen body's


class CountingBody:
    """A tiny Keras body that counts the segments it embeds, and fails on its ``fail_on``-th call."""

    def __init__(self, fail_on: int = 0) -> None:
        keras.utils.set_random_seed(0)
        self.model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(4)])
        self.segments, self.calls, self.fail_on = 0, 0, fail_on

    def __call__(self, x, training=False):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("killed")
        self.segments += len(x)
        return self.model(x, training=training)


def split(folder, tracks, content_ids=None, segments=3) -> embeddings.Split:
    """A split of ``segments`` segments a track, as the Trainer reads it (canonical shards), named by content."""
    folder.mkdir(parents=True)
    write_segments(folder / "part-0.gz", [(t, i, n % 3) for n, t in enumerate(tracks) for i in range(segments)])
    shards = canonical_order.write_shards(str(folder / "*.gz"), OUTPUT, str(folder / "shards"))
    return embeddings.read_split(shards, OUTPUT, content_ids, "transform_graph/1")


def batches(shards):
    return training.make_dataset(shards, OUTPUT, CONFIG, training=False, with_track_ids=True)


def embedded(store, body, *splits) -> int:
    return embeddings.embed_missing(store, body, list(splits), batches, "train")


def direct(body, one: embeddings.Split) -> np.ndarray:
    """The body's embeddings of the whole split, in canonical order, without a store."""
    return np.concatenate([body.model(x).numpy() for x, _, _ in batches(one.shards)])


def test_a_second_pass_embeds_nothing_and_gathers_the_same_embeddings(tmp_path, capsys):
    store, body = embeddings.SegmentStore(str(tmp_path / "store")), CountingBody()
    train = split(tmp_path / "train", [f"blues.{t:05d}" for t in range(4)])
    assert embedded(store, body, train) == 12 and body.segments == 12
    first = store.gather(train.keys)
    np.testing.assert_allclose(first, direct(body, train), rtol=1e-6)  # in the split's canonical order
    again = embeddings.SegmentStore(store.root)  # a later run
    assert embedded(again, body, train) == 0 and body.segments == 12
    np.testing.assert_array_equal(again.gather(train.keys), first)
    assert "[train] frozen body: 0 of 12 segments to embed (12 already in the store" in capsys.readouterr().out


def test_new_tracks_alone_are_embedded_and_a_moved_file_is_not(tmp_path, capsys):
    store, body = embeddings.SegmentStore(str(tmp_path / "store")), CountingBody()
    tracks = [f"blues.{t:05d}" for t in range(4)]
    content = {track: f"sha-{n}" for n, track in enumerate(tracks)}
    embedded(store, body, split(tmp_path / "old", tracks, content))
    grown = [*tracks, "rock.00000", "rock.00001"]
    grown_split = split(tmp_path / "grown", grown, {**content, "rock.00000": "sha-4", "rock.00001": "sha-5"})
    assert embedded(store, body, grown_split) == 6 and body.segments == 12 + 6
    assert "[train] frozen body: 6 of 18 segments to embed (12 already in the store" in capsys.readouterr().out

    # blues.00000 renamed: the same content under another track id; a copy of sha-4 is embedded once with it.
    moved = ["moved/blues.00000", *tracks[1:], "copy-a", "copy-b"]
    moved_split = split(tmp_path / "moved", moved, {"moved/blues.00000": "sha-0", **content, "copy-a": "sha-9",
                                                    "copy-b": "sha-9"})
    assert embedded(store, body, moved_split) == 3 and body.segments == 18 + 3
    out = capsys.readouterr().out
    assert "3 of 18 segments to embed (12 already in the store" in out and ", 3 copies of others)" in out

    def by_index(one: embeddings.Split, track: bytes) -> np.ndarray:
        mine = one.track_ids == track
        return store.gather(one.keys[mine][np.argsort(one.indices[mine])])
    np.testing.assert_array_equal(by_index(moved_split, b"moved/blues.00000"), by_index(grown_split, b"blues.00000"))


def test_a_device_view_is_named_by_its_track_and_a_track_without_content_id_by_the_transform_output():
    plain, view = 2, 2 + embeddings.VIEW_INDEX_STRIDE
    keys = embeddings.segment_keys([b"a", b"b", b"a", b"b"], [plain, plain, view, view], {"a": "x", "b": "x"}, "")
    assert keys[0] == keys[1] and keys[2] != keys[3]  # a view is seeded by its track id
    unknown = [embeddings.segment_keys([b"c"], [plain], {"a": "x"}, salt)[0] for salt in ("graph/1", "graph/2")]
    assert unknown[0] != unknown[1]


def test_a_killed_pass_keeps_the_chunks_it_finished_and_none_half_written(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "CHUNK_SEGMENTS", 4)
    train = split(tmp_path / "train", [f"blues.{t:05d}" for t in range(4)])
    root = str(tmp_path / "store")
    with pytest.raises(RuntimeError, match="killed"):  # batches of 2: a chunk of 4 is written, then the body fails
        embedded(embeddings.SegmentStore(root), CountingBody(fail_on=4), train)
    # What a kill between a chunk's two files leaves: its embeddings, and its keys not yet renamed.
    for name, values in (("emb-0123456789ab.npy", np.zeros((2, 4), np.float32)),
                         ("keys-0123456789ab.npy.part", train.keys[:2])):
        with open(os.path.join(root, name), "wb") as f:
            np.save(f, values)
    store, body = embeddings.SegmentStore(root), CountingBody()
    assert int(store.holds(train.keys).sum()) == 4
    assert embedded(store, body, train) == 8 and body.segments == 8
    np.testing.assert_allclose(store.gather(train.keys), direct(body, train), rtol=1e-6)


def test_the_pass_reports_its_progress_at_least_every_30_seconds(capsys):
    now = [0.0]
    progress = embeddings.Progress(5000, "tune", clock=lambda: now[0])
    shown = []
    for _ in range(100):  # 50 segments every 7 s
        now[0] += 7.0
        progress.done(50)
        if capsys.readouterr().out:
            shown.append(now[0])
    gaps = np.diff([0.0, *shown])
    assert len(shown) >= 700 / 30 - 1 and gaps.max() <= 30.0, gaps
    progress = embeddings.Progress(5000, "tune", clock=lambda: 200.0)
    progress.clock = lambda: 228.0
    progress.done(1234)
    assert capsys.readouterr().out == ("[tune] embedded 1,234/5,000 segments (25%), 44.1 segments/s, "
                                       "about 85 s left\n")


def test_the_run_gets_its_splits_pairs_in_canonical_order(tmp_path):
    store, body = embeddings.SegmentStore(str(tmp_path / "store")), CountingBody()
    train = split(tmp_path / "train", [f"blues.{t:05d}" for t in range(5)])
    embedded(store, body, train)
    back = embeddings.write_gathered(store, train, 3, str(tmp_path / "run" / "train.tfrecord"))
    pairs = list(back.as_numpy_iterator())
    np.testing.assert_allclose(np.stack([e for e, _ in pairs]), direct(body, train), rtol=1e-6)
    np.testing.assert_array_equal(np.argmax([label for _, label in pairs], axis=1), train.labels)
    assert len(list(back.shuffle(4, seed=1).batch(4))) == 4  # as the heads read it, on every epoch


def test_an_empty_dataset_is_refused(tmp_path):
    body = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    empty = tf.data.Dataset.from_tensor_slices((np.zeros((0, 5), "f"), np.zeros((0, 3), "f"))).batch(4)
    with pytest.raises(ValueError, match="No examples to embed"):
        embeddings.embed(body, empty, str(tmp_path / "e.tfrecord"))


def test_the_store_follows_the_body_and_its_input_not_the_transform_output(tmp_path, capsys):
    config = train_config("musicnn")

    def root(config, graph="pipeline_root/Transform/transform_graph/5"):
        return embeddings.store_for(config, None, graph, str(tmp_path / "scratch"), "train").root

    base = root(config)
    assert base.startswith(config.pipeline_root) and "/embeddings/musicnn-" in base
    tuned = dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=0.009, heads=3,
                                                                  label_smoothing=0.1, batch_size=7))
    assert root(tuned) == root(config, "pipeline_root/Transform/transform_graph/6") == base
    assert root(dataclasses.replace(config, features=dataclasses.replace(config.features, n_mels=64))) != base
    assert root(dataclasses.replace(config, audio=dataclasses.replace(config.audio, hop_seconds=1.5))) != base
    assert root(train_config("vgg")) != base
    assert embeddings.store_for(train_config("cnn"), None, "g", str(tmp_path), "train") is None  # no frozen body
    remote = dataclasses.replace(config, paths=dataclasses.replace(config.paths, pipeline_root="gs://b/root"))
    assert root(remote) == str(tmp_path / "scratch" / "embeddings")
    assert "[train] the pipeline root gs://b/root is remote" in capsys.readouterr().out
