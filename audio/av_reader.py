"""FFmpeg (through PyAV) behind the small soundfile-like interface decode.py reads libsndfile with.

The file is read through its file object, never as one bytes string, and opening reads only the header, so
the caller checks rate, channels and length before any sample. A seek starts :data:`PREROLL_SECONDS` early
for the codec's pre-roll and drops samples up to the target; decode.py windows only the codecs tested exact.
"""
from __future__ import annotations

from typing import BinaryIO, Optional

import av
import numpy as np

PREROLL_SECONDS = 0.25
INDEPENDENT_PACKETS = frozenset({"alac", "flac", "wavpack"})  # every packet decodes on its own: no pre-roll
# Containers whose declared length is a bit-rate estimate: a shorter decode is no sign of a cut file.
ESTIMATED_LENGTH = frozenset({"aac", "mp3", "ac3", "eac3", "dts", "amr"})

_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


class AvError(RuntimeError):
    """FFmpeg could not open, seek or decode the file; the message is FFmpeg's."""


def _message(error: Exception) -> str:
    """FFmpeg's own words for an error (PyAV's str() adds the errno and a file name it does not know)."""
    return getattr(error, "strerror", None) or str(error)


class AvSound:
    """The first audio stream of a container, decoded in order from :meth:`tell` on."""

    def __init__(self, f: BinaryIO):
        try:
            self._container = av.open(f, "r", metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, OverflowError, ValueError) as e:
            raise AvError(_message(e)) from None
        try:
            streams = self._container.streams.audio
            if not streams:
                raise AvError(f"the {self._container.format.name} container holds no audio stream")
            self._stream = streams[0]
            codec = self._stream.codec_context
            self.samplerate = int(codec.sample_rate or 0)
            self.channels = int(codec.channels or 0)
            self.format = self._container.format.name.split(",")[0]
            self.subtype = codec.name
            self.sample_format = codec.format.name if codec.format is not None else ""
            self.frames, self.declared_exactly = self._declared_frames()
        except BaseException:
            self._container.close()
            raise
        self._origin = self._stream.start_time or 0  # stream time of the first sample
        # The decoder, decoded samples not read yet (and their count), the next frame's position, the end reached.
        self._decoder, self._buffer, self._buffered, self._position, self._ended = None, [], 0, 0, False
        self.broken = False  # decoding stopped at an error after some samples

    def _declared_frames(self) -> tuple[int, bool]:
        """(stated length in frames or 0, whether it is a count rather than an estimate)."""
        stream, rate = self._stream, self.samplerate
        if stream.duration is not None and stream.time_base is not None and rate > 0:
            seconds = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            seconds = self._container.duration / av.time_base
        else:
            return 0, False
        return max(0, round(seconds * rate)), self.format not in ESTIMATED_LENGTH

    def __enter__(self) -> "AvSound":
        return self

    def __exit__(self, *exc) -> None:
        self._container.close()

    def tell(self) -> int:
        return self._position

    def _convert(self, data: np.ndarray, dtype: str) -> np.ndarray:
        """Decoded samples (the codec's own type) as int16 (s16 only) or float32 in [-1, 1]."""
        name = self.sample_format.rstrip("p")
        if dtype == "int16":
            if name != "s16":
                raise AvError(f"int16 asked of {self.sample_format} samples")
            return data
        if name in _SCALE:
            return data.astype(np.float32) * np.float32(1.0 / _SCALE[name])  # powers of two: exact
        if name == "u8":
            return ((data.astype(np.float32) - 128.0) / 128.0)
        return data.astype(np.float32, copy=False)

    def _next(self) -> Optional[tuple[int, np.ndarray]]:
        """(first sample's position or -1, samples) of the next decoded frame; None at the end."""
        if self._ended:
            return None
        try:
            if self._decoder is None:
                self._decoder = self._container.decode(self._stream)
            frame = next(self._decoder)
        except StopIteration:
            self._ended = True
            return None
        except (av.FFmpegError, ValueError) as e:
            self._ended = True
            if self._position == 0 and not self._buffered:
                raise AvError(_message(e)) from None
            self.broken = True
            return None
        data = frame.to_ndarray()
        data = data.T if frame.format.is_planar else data.reshape(-1, self.channels)
        if frame.pts is None or frame.time_base is None:
            return -1, data
        return round(float((frame.pts - self._origin) * frame.time_base) * self.samplerate), data

    def read(self, frames: int = -1, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        """Up to FRAMES frames (-1: to the end) from :meth:`tell` on, as a (frames, channels) array."""
        while (frames < 0 or self._buffered < frames) and (decoded := self._next()) is not None:
            self._buffer.append(decoded[1])
            self._buffered += len(decoded[1])
        if not self._buffer:
            return np.zeros((0, self.channels), np.int16 if dtype == "int16" else np.float32)
        native = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        if 0 <= frames < len(native):
            native, self._buffer = native[:frames], [native[frames:]]
        else:
            self._buffer = []
        self._buffered -= len(native)
        self._position += len(native)
        out = self._convert(native, dtype)
        return out if always_2d else out[:, 0]

    def seek(self, frame: int) -> int:
        """Go to source frame FRAME: seek before it by the pre-roll, decode and drop up to it."""
        rate, base = self.samplerate, self._stream.time_base
        independent = self.subtype in INDEPENDENT_PACKETS or self.subtype.startswith("pcm_")
        start = frame if independent else max(0, frame - round(PREROLL_SECONDS * rate))
        try:
            self._container.seek(self._origin + int(start / rate / base), stream=self._stream, backward=True)
        except av.FFmpegError as e:
            raise AvError(f"seek failed: {_message(e)}") from None
        self._decoder, self._buffer, self._buffered, self._ended = None, [], 0, False
        self._position = frame
        while (decoded := self._next()) is not None:
            position, data = decoded
            if position < 0 or position > frame:
                raise AvError(f"the seek to frame {frame} landed on frame {position}")
            if position + len(data) > frame:
                self._buffer, self._buffered = [data[frame - position:]], position + len(data) - frame
                return frame
        raise AvError(f"the seek to frame {frame} went past the end")
