"""Decode one audio file into mono samples at the pipeline's rate, or say why not.

libsndfile (through soundfile) reads every format the pipeline accepts: WAV, AU, FLAC,
Ogg Vorbis/Opus and, since libsndfile 1.1, MP3. No librosa/audioread fallback is needed
(or wanted: audioread depends on whatever ffmpeg/GStreamer the machine happens to have).

Lossless path: a 16-bit mono file already at the target rate (all of GTZAN) is read as
int16 and never passes through float, so its samples reach the tf.Examples unchanged.
Anything else is read as float32, downmixed by averaging the channels and resampled with
soxr's HQ preset (what ``librosa.resample`` uses by default, ``res_type="soxr_hq"``).

A file that cannot become at least one segment of real audio raises :class:`BadAudio`
with a reason code from :data:`REASONS`; the caller turns it into a quarantine record.
"""
from __future__ import annotations

import dataclasses
import io
import math
import numpy as np
import soundfile as sf
import soxr

# Quarantine reason codes (stable strings: they are counted in summary.json).
EMPTY = "empty"                # 0 bytes, or a header with no samples
NOT_AUDIO = "not_audio"        # no known audio signature (e.g. a text file named .wav)
UNDECODABLE = "undecodable"    # looks like audio, but libsndfile cannot decode it
NON_FINITE = "non_finite"      # float samples with NaN or Inf
TOO_SHORT = "too_short"        # shorter than one segment
SILENT = "silent"              # RMS level below audio.silence_dbfs
REASONS = (EMPTY, NOT_AUDIO, UNDECODABLE, NON_FINITE, TOO_SHORT, SILENT)

# Leading bytes of the containers libsndfile reads (WAV/RF64/W64, AU, FLAC, Ogg, MP3, AIFF).
_SIGNATURES = (b"RIFF", b"RIFX", b"RF64", b"riff", b".snd", b"fLaC", b"OggS", b"ID3", b"FORM")


class BadAudio(Exception):
    """A file that cannot be ingested; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
    """Mono samples at the target rate: int16 (lossless path) or float32 in [-1, 1]."""

    samples: np.ndarray
    source_rate: int
    source_channels: int
    source_subtype: str

    @property
    def lossless(self) -> bool:
        return self.samples.dtype == np.int16


def looks_like_audio(head: bytes) -> bool:
    """True when the first bytes carry a known container signature or an MPEG frame sync."""
    if head.startswith(_SIGNATURES):
        return True
    # A bare MP3 stream starts with a frame header: 11 set sync bits.
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def _libsndfile_message(error: Exception) -> str:
    # LibsndfileError's str() names the BytesIO object; its error_string is the useful part.
    return getattr(error, "error_string", None) or str(error)


def decode(data: bytes, target_rate: int) -> DecodedAudio:
    """Decode a whole file's bytes to mono at ``target_rate``; raises BadAudio."""
    if not data:
        raise BadAudio(EMPTY, "the file is empty (0 bytes)")
    if not looks_like_audio(data[:4]):
        raise BadAudio(NOT_AUDIO, f"no known audio signature (the file starts with {data[:16]!r})")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, subtype = f.samplerate, f.channels, f.subtype
            if subtype == "PCM_16" and channels == 1 and rate == target_rate:
                samples = f.read(dtype="int16")
            else:
                samples = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise BadAudio(UNDECODABLE, f"libsndfile: {_libsndfile_message(e)}") from None
    if samples.size == 0:
        raise BadAudio(EMPTY, "the header is valid but the file holds no samples (truncated?)")
    if samples.dtype != np.int16:
        if not np.isfinite(samples).all():
            raise BadAudio(NON_FINITE, "the decoded samples contain NaN or Inf")
        samples = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
        if rate != target_rate:
            samples = soxr.resample(samples, rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    return DecodedAudio(samples=samples, source_rate=rate, source_channels=channels, source_subtype=subtype)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS)."""
    x = samples.astype(np.float64)
    if samples.dtype == np.int16:
        x /= 32768.0
    rms = math.sqrt(float(np.mean(np.square(x)))) if x.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def check_usable(audio: DecodedAudio, segment_samples: int, sample_rate: int, silence_dbfs: float) -> None:
    """Raise BadAudio unless the audio fills one segment and is louder than the silence floor."""
    n = len(audio.samples)
    if n < segment_samples:
        raise BadAudio(TOO_SHORT, f"{n / sample_rate:.3f} s of audio is shorter than one "
                                  f"{segment_samples / sample_rate:g} s segment")
    level = rms_dbfs(audio.samples)
    if level < silence_dbfs:
        shown = "-inf" if math.isinf(level) else f"{level:.1f}"
        raise BadAudio(SILENT, f"RMS level {shown} dBFS is below the silence floor of {silence_dbfs:g} dBFS")


def load(data: bytes, sample_rate: int, segment_samples: int, silence_dbfs: float) -> DecodedAudio:
    """decode() followed by check_usable(): what ingestion does with each file."""
    audio = decode(data, sample_rate)
    check_usable(audio, segment_samples, sample_rate, silence_dbfs)
    return audio
