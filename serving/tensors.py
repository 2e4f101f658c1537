"""NumPy arrays to and from ``tensorflow.TensorProto`` without the TensorFlow runtime (serving/protos.py).

Arrays travel as little-endian ``tensor_content``; decoding also accepts the typed ``*_val`` fields.
"""
from __future__ import annotations

import math

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

# NumPy dtype <-> (DataType, the TensorProto field holding typed values).
_NUMERIC: dict[np.dtype, tuple[int, str]] = {np.dtype(t): (enum, field) for t, enum, field in (
    (np.float32, types_pb2.DT_FLOAT, "float_val"), (np.float64, types_pb2.DT_DOUBLE, "double_val"),
    (np.int32, types_pb2.DT_INT32, "int_val"), (np.int16, types_pb2.DT_INT16, "int_val"),
    (np.int8, types_pb2.DT_INT8, "int_val"), (np.uint8, types_pb2.DT_UINT8, "int_val"),
    (np.int64, types_pb2.DT_INT64, "int64_val"), (np.bool_, types_pb2.DT_BOOL, "bool_val"))}
_BY_ENUM: dict[int, tuple[np.dtype, str]] = {enum: (dtype, field) for dtype, (enum, field) in _NUMERIC.items()}


def to_tensor_proto(value: np.ndarray | bytes | str | int | float) -> tensor_pb2.TensorProto:
    """Encode an array (or scalar) keeping its dtype; strings become DT_STRING."""
    array = np.asarray(value)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape])
    if array.dtype.kind in "SUO":
        items = [v.encode() if isinstance(v, str) else bytes(v) for v in array.reshape(-1).tolist()]
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=items)
    dtype = array.dtype.newbyteorder("=") if array.dtype.byteorder not in "=|" else array.dtype
    if dtype not in _NUMERIC:
        raise TypeError(f"cannot send a {array.dtype} tensor; supported: {', '.join(d.name for d in _NUMERIC)}, str")
    enum, _ = _NUMERIC[dtype]
    content = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()
    return tensor_pb2.TensorProto(dtype=enum, tensor_shape=shape, tensor_content=content)


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Decode a TensorProto; DT_STRING gives an object array of ``bytes``."""
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if proto.dtype == types_pb2.DT_STRING:
        return _fill(np.array(list(proto.string_val), dtype=object), shape)
    if proto.dtype not in _BY_ENUM:
        raise TypeError(f"cannot decode a {types_pb2.DataType.Name(proto.dtype)} tensor")
    dtype, field = _BY_ENUM[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    return _fill(np.array(getattr(proto, field), dtype=dtype), shape)


def _fill(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """TensorFlow's rule: fewer values than elements means the last one repeats."""
    size = math.prod(shape)
    if values.size == size:
        return values.reshape(shape)
    if values.size == 0 or values.size > size:
        raise ValueError(f"TensorProto holds {values.size} values for shape {list(shape)}")
    return np.concatenate([values, np.repeat(values[-1:], size - values.size)]).reshape(shape)
