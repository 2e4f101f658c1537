"""The span chain's pieces: the track id read from raw bytes, tombstones, the chain's retired tracks, and what
counts as an unchanged file."""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from components.audio_example_gen import segments, spans


def raw(track_id: str) -> bytes:
    return segments.make_example(np.arange(8, dtype=np.int16), genre="rock", label=3, track_id=track_id,
                                 segment_index=2, sample_rate=8000, source_path=f"{track_id}.wav")


def test_the_track_id_is_read_from_the_bytes_as_tensorflow_reads_it():
    for track in ("rock/a", "Ünïcode Band/Album/01 Song", ""):
        record = raw(track)
        assert spans.track_id_of(record) == tf.train.Example.FromString(record).features.feature[
            "track_id"].bytes_list.value[0].decode() == track


def test_a_tombstone_is_the_record_with_tombstone_set():
    record = raw("rock/a")
    marked = tf.train.Example.FromString(spans.tombstone(record))
    original = tf.train.Example.FromString(record)
    assert marked.features.feature["tombstone"].int64_list.value == [1]
    del marked.features.feature["tombstone"]
    assert marked == original
    assert spans.track_id_of(spans.tombstone(record)) == "rock/a"


def test_a_chain_keeps_what_each_span_retired(tmp_path):
    chain = spans.Chain(2, {1: "a", 2: "b"}, "key").retiring(
        [{"span": 1, "split": "train", "track_id": "x"}, {"span": 1, "split": "test", "track_id": "y"}])
    later = spans.Chain(3, {**chain.uris, 3: "c"}, "key", chain.retired).retiring(
        [{"span": 2, "split": "train", "track_id": "z"}])
    assert later.dropped(1, "train") == {"x"} and later.dropped(1, "test") == {"y"} and later.dropped(2, "train") == {"z"}
    assert later.dropped(3, "train") == frozenset()
    spans.write_chain(str(tmp_path), later)
    assert spans.read_chain(str(tmp_path)) == later
    assert spans.retired_spans([{"span": 1, "split": "train", "track_id": "x"},
                                {"span": 1, "split": "eval", "track_id": "w"}]) == {1: {"x"}}


def test_a_file_is_unchanged_while_its_size_and_time_or_its_bytes_stay(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF1234")
    state = spans.file_state(str(path))
    before = {"size": state[0], "mtime_ns": state[1], "sha256": spans.sha256_of(str(path))}
    assert spans.unchanged(before, state, str(path))
    os.utime(path, ns=(state[1] + 10**9, state[1] + 10**9))  # touched: the same bytes
    assert spans.unchanged(before, spans.file_state(str(path)), str(path))
    path.write_bytes(b"RIFF4321")  # other bytes, the same size
    assert not spans.unchanged(before, spans.file_state(str(path)), str(path))
    assert not spans.unchanged(None, state, str(path)) and not spans.unchanged(before, None, str(path))


def test_forget_keeps_the_span_numbers_going(tmp_path):
    spans.point_to(str(tmp_path), str(tmp_path / "examples"), 4)
    assert spans.last_span(str(tmp_path)) == 4
    spans.forget(str(tmp_path))
    assert spans.latest_chain(str(tmp_path)) is None and spans.last_span(str(tmp_path)) == 4
