"""Cut decoded audio into fixed-length segments and write them as tf.Examples (the raw-example contract in
docs/contracts.md; the serving graph reproduces the same bytes with tf.audio.encode_wav)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


def quantize(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16, bit-identical to tf.audio.encode_wav; in float64, where x * 32768 + 0.5 is exact for
    every float32 x, so no value lands on the wrong side of a rounding boundary. int16 passes unchanged."""
    if samples.dtype == np.int16:
        return samples
    scaled = samples.astype(np.float64) * 32768.0
    rounded = np.trunc(scaled + np.copysign(0.5, scaled))
    return np.clip(rounded, -32768, 32767).astype(np.int16)


def segment_starts(num_samples: int, segment: int, hop: int, last_segment: str) -> list[int]:
    """Start offsets of full segments every ``hop`` samples (``last_segment="pad"``: one more for leftover audio)."""
    if last_segment not in ("drop", "pad"):
        raise ValueError(f"audio.last_segment must be 'drop' or 'pad', not {last_segment!r}.")
    if segment <= 0 or hop <= 0:
        raise ValueError(f"segment ({segment}) and hop ({hop}) must be positive sample counts.")
    starts = list(range(0, num_samples - segment + 1, hop))
    if last_segment == "pad":
        following = starts[-1] + hop if starts else 0
        covered = starts[-1] + segment if starts else 0
        if following < num_samples and covered < num_samples:
            starts.append(following)
    return starts


def spread(count: int, limit: int) -> list[int]:
    """Indices of at most ``limit`` of ``count`` segments (<= 0: all), evenly spaced: a long track's intro is not its
    genre's most typical part."""
    if limit <= 0 or count <= limit:
        return list(range(count))
    if limit == 1:
        return [count // 2]
    return [round(i * (count - 1) / (limit - 1)) for i in range(limit)]


def spans(num_samples: int, starts: Sequence[int], segment: int) -> list[tuple[int, int]]:
    """The [start, end) sample spans segments at ``starts`` cover, cut at the track's end: what a decoder must read."""
    return [(start, min(start + segment, num_samples)) for start in starts]


def pieces(samples: np.ndarray, starts: Sequence[int], segment: int) -> Iterator[np.ndarray]:
    """Yield the int16 segments of exactly ``segment`` samples that begin at ``starts``."""
    pcm = quantize(samples)
    for start in starts:
        piece = pcm[start:start + segment]
        if len(piece) < segment:
            piece = np.concatenate([piece, np.zeros(segment - len(piece), dtype=np.int16)])
        yield piece


def cut(samples: np.ndarray, segment: int, hop: int, last_segment: str) -> Iterator[np.ndarray]:
    """Yield every int16 segment of a track (segment_starts)."""
    return pieces(samples, segment_starts(len(samples), segment, hop, last_segment), segment)


# tf.Example is encoded by hand (protobuf wire format of example.proto and feature.proto) so that Beam workers never
# import TensorFlow (seconds of CPU per process); segments_test.py checks the bytes against tf.train.Example's.
_UINT64 = (1 << 64) - 1


def _varint(value: int) -> bytes:
    value &= _UINT64  # int64 is two's complement on the wire
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def bytes_feature(value: bytes) -> bytes:
    return _field(1, _field(1, value))  # Feature.bytes_list -> BytesList.value


def int64_feature(value: int) -> bytes:
    return _field(3, _field(1, _varint(value)))  # Feature.int64_list -> Int64List.value (packed)


def serialize_example(features: dict[str, bytes]) -> bytes:
    """Example.features -> Features.feature map entries {key = 1, value = 2}, keys sorted."""
    entries = b"".join(_field(1, _field(1, key.encode()) + _field(2, value)) for key, value in sorted(features.items()))
    return _field(1, entries)


def make_example(pcm: np.ndarray, *, genre: str, label: int, track_id: str, segment_index: int, sample_rate: int,
                 source_path: str) -> bytes:
    """One serialized raw tf.Example as specified in docs/contracts.md; ``label`` indexes config.genres."""
    return serialize_example({
        "audio": bytes_feature(pcm.astype("<i2", copy=False).tobytes()), "label": int64_feature(label),
        "genre": bytes_feature(genre.encode()), "track_id": bytes_feature(track_id.encode()),
        "segment_index": int64_feature(segment_index), "num_samples": int64_feature(len(pcm)),
        "sample_rate": int64_feature(sample_rate), "source_path": bytes_feature(source_path.encode())})
