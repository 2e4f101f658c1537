"""The client's NumPy <-> TensorProto codec agrees with TensorFlow's own conversion both ways."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from serving.tensors import to_ndarray, to_tensor_proto

ARRAYS = {
    "float32": np.linspace(-1, 1, 7, dtype=np.float32),
    "float64 2-D": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
    "int32 scalar": np.int32(22050),
    "int16": np.array([-32768, 0, 32767], np.int16),
    "int64": np.array([2**40, -1], np.int64),
    "uint8": np.array([0, 255], np.uint8),
    "bool": np.array([True, False]),
    "big-endian float32": np.array([0.5, -2.0], dtype=">f4"),
    "empty": np.zeros(0, np.float32),
    "strings": np.array([b"blues", b"jazz"], dtype=object),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_round_trips_through_tensorflow(name):
    array = np.asarray(ARRAYS[name])
    decoded_by_tf = tf.make_ndarray(to_tensor_proto(array))
    assert decoded_by_tf.shape == array.shape
    assert np.array_equal(decoded_by_tf, array)
    if array.dtype.byteorder == ">":
        return  # tf.make_tensor_proto copies big-endian bytes as they are: nothing to compare with
    ours = to_ndarray(tf.make_tensor_proto(array))
    assert ours.shape == array.shape and np.array_equal(ours, array)
    if array.dtype.kind not in "O":
        assert ours.dtype == array.dtype.newbyteorder("=")


def test_decodes_tensorflows_short_form_and_strings():
    short = tf.make_tensor_proto(1.5, dtype=tf.float32, shape=[4])  # one value stands for four
    assert not short.tensor_content
    assert np.array_equal(to_ndarray(short), np.full(4, 1.5, np.float32))
    assert to_ndarray(to_tensor_proto("rock")).item() == b"rock"


def test_refuses_what_it_cannot_encode():
    with pytest.raises(TypeError, match="cannot send a complex64 tensor"):
        to_tensor_proto(np.zeros(2, np.complex64))
