"""Quantisation, segmenting and the hand-encoded tf.Example, checked against TensorFlow itself."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from components.audio_example_gen import segments


def test_quantize_matches_tf_audio_encode_wav_bit_for_bit():
    rng = np.random.default_rng(0)
    halfway = (np.arange(-40, 40) + 0.5) / 32768  # exactly between two int16 steps
    edges = np.array([-1.5, -1.0, -1.0 + 1e-7, -0.5 / 32768, 0.0, 0.5 / 32768, 1.0 - 1e-7, 1.0, 1.2,
                      32767.4 / 32768, 32767.5 / 32768, -32768.5 / 32768])
    x = np.concatenate([rng.uniform(-1.1, 1.1, 5000), halfway, edges]).astype(np.float32)
    wav = tf.audio.encode_wav(tf.constant(x)[:, None], 22050).numpy()
    expected = np.frombuffer(wav[44:], dtype="<i2")  # canonical 44-byte header, then PCM
    np.testing.assert_array_equal(segments.quantize(x), expected)


def test_int16_input_passes_through_unchanged():
    pcm = np.array([-32768, -1, 0, 1, 32767], np.int16)
    assert segments.quantize(pcm) is pcm


@pytest.mark.parametrize("n,segment,hop,last,expected", [
    (100, 30, 30, "drop", [0, 30, 60]),
    (100, 30, 30, "pad", [0, 30, 60, 90]),
    (90, 30, 30, "pad", [0, 30, 60]),          # nothing left over: no padded segment
    (100, 30, 20, "drop", [0, 20, 40, 60]),     # overlapping segments
    (100, 30, 20, "pad", [0, 20, 40, 60, 80]),
    (29, 30, 30, "drop", []),
])
def test_segment_starts(n, segment, hop, last, expected):
    assert segments.segment_starts(n, segment, hop, last) == expected


def test_cut_zero_pads_the_last_segment():
    pieces = list(segments.cut(np.arange(1, 101, dtype=np.int16), 30, 30, "pad"))
    assert [len(p) for p in pieces] == [30] * 4
    np.testing.assert_array_equal(pieces[-1], np.r_[np.arange(91, 101), np.zeros(20)].astype(np.int16))


@pytest.mark.parametrize("count,limit,expected", [
    (10, 20, list(range(10))),           # GTZAN's 30 s at 3 s segments: whole
    (10, 0, list(range(10))),            # 0: no limit
    (600, 20, [round(i * 599 / 19) for i in range(20)]),
    (7, 3, [0, 3, 6]),
    (7, 1, [3]),
])
def test_spread_keeps_at_most_the_limit_evenly_spaced_with_both_ends(count, limit, expected):
    kept = segments.spread(count, limit)
    assert kept == expected and len(set(kept)) == len(kept)


def test_bad_last_segment_setting_is_a_clear_error():
    with pytest.raises(ValueError, match="'drop' or 'pad'"):
        segments.segment_starts(100, 30, 30, "keep")


def test_example_bytes_equal_tensorflows_deterministic_serialization():
    pcm = np.array([-32768, -2, 0, 3, 32767] * 7, np.int16)
    ours = segments.make_example(pcm, genre="jazz", label=5, track_id="jazz.00054", segment_index=300,
                                 sample_rate=22050, source_path="genres_original/jazz/jazz.00054.wav")
    reference = tf.train.Example(features=tf.train.Features(feature={
        "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pcm.astype("<i2").tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[5])),
        "genre": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jazz"])),
        "track_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jazz.00054"])),
        "segment_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[300])),
        "num_samples": tf.train.Feature(int64_list=tf.train.Int64List(value=[35])),
        "sample_rate": tf.train.Feature(int64_list=tf.train.Int64List(value=[22050])),
        "source_path": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[b"genres_original/jazz/jazz.00054.wav"])),
    }))
    assert ours == reference.SerializeToString(deterministic=True)
    # And the audio decodes back to the samples exactly as the serving graph reads them.
    parsed = tf.io.parse_single_example(ours, {"audio": tf.io.FixedLenFeature([], tf.string)})
    np.testing.assert_array_equal(tf.io.decode_raw(parsed["audio"], tf.int16).numpy(), pcm)


def test_large_and_negative_int64_values_round_trip():
    for value in (0, 127, 128, 2 ** 31, 2 ** 63 - 1, -1, -(2 ** 63)):
        encoded = segments.serialize_example({"v": segments.int64_feature(value)})
        assert tf.train.Example.FromString(encoded).features.feature["v"].int64_list.value == [value]
