"""Audio in the containers and codecs a person's library holds, encoded with PyAV (FFmpeg's encoders in a
wheel): what the ingestion benchmark's format table and the tests' libraries are made of."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np

# format name -> (extension, PyAV container format, codec, sample format, the rate the codec takes or None)
FORMATS: dict[str, tuple[str, str, str, str, Optional[int]]] = {
    "aac": ("m4a", "ipod", "aac", "fltp", None),
    "alac": ("m4a", "ipod", "alac", "s16p", None),
    "opus": ("opus", "ogg", "libopus", "s16", 48000),
    "aiff": ("aiff", "aiff", "pcm_s16be", "s16", None),
    "mp3": ("mp3", "mp3", "libmp3lame", "s16p", None),
    "flac": ("flac", "flac", "flac", "s16", None),
    "wav": ("wav", "wav", "pcm_s16le", "s16", None),
    "wma": ("wma", "asf", "wmav2", "fltp", None),
}
# More containers a library or a browser holds (a WebM is what MediaRecorder records), kept apart from FORMATS,
# the formats a library's tags are written in; encode() takes both.
MORE_FORMATS: dict[str, tuple[str, str, str, str, Optional[int]]] = {
    "webm": ("webm", "webm", "libopus", "s16", 48000),
    "mka": ("mka", "matroska", "flac", "s16", None),
    "oga": ("oga", "ogg", "flac", "s16", None),
    "aif": ("aif", "aiff", "pcm_s16be", "s16", None),
    "mp4": ("mp4", "mp4", "aac", "fltp", None),
    "adts": ("aac", "adts", "aac", "fltp", None),
    "aifc": ("aifc", "aiff", "pcm_f32be", "flt", None),
    "caf": ("caf", "caf", "alac", "s16p", None),
    "wv": ("wv", "wv", "wavpack", "s16p", None),
}


def encode(path: Path, samples: np.ndarray, rate: int, fmt: str, options: Optional[dict[str, str]] = None) -> Path:
    """Write float SAMPLES (in [-1, 1]; (samples,) mono, (samples, 2) stereo) at RATE to PATH with FORMAT's
    extension, in FORMAT (a key of :data:`FORMATS` or :data:`MORE_FORMATS`) with FFmpeg muxer ``options``."""
    ext, container_format, codec, sample_format, codec_rate = {**FORMATS, **MORE_FORMATS}[fmt]
    path = Path(path).with_suffix("." + ext)
    path.parent.mkdir(parents=True, exist_ok=True)
    if codec_rate and codec_rate != rate:
        import soxr  # the codec takes one rate only (Opus: 48 kHz)
        samples = soxr.resample(samples.astype(np.float32), rate, codec_rate)
        rate = codec_rate
    # (frames, channels) in the codec's sample type, cut into 4096-frame AudioFrames below.
    if sample_format.startswith("s16"):
        data = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16).reshape(len(samples), -1)
    else:
        data = samples.astype(np.float32).reshape(len(samples), -1)
    layout = "mono" if samples.ndim == 1 else "stereo"
    with av.open(str(path), "w", format=container_format, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        if codec == "wmav2":
            stream.bit_rate = 64000  # WMA's encoder has no default bit rate
        stream.time_base = Fraction(1, rate)
        for start in range(0, len(data), 4096):
            block = data[start:start + 4096]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T) if sample_format.endswith("p")
                                               else block.reshape(1, -1), format=sample_format, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
