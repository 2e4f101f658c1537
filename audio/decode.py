"""Decode one audio file into mono samples at the pipeline's rate, or say why not.

The reader is chosen by the file's leading bytes (:func:`reader_for`), never its name: libsndfile for WAV, AU,
FLAC, MP3, Ogg Vorbis and AIFF (where both read a format it is as fast or faster, BENCHMARKS.md), FFmpeg
(``audio/av_reader.py``) for every other container and codec. A 16-bit mono file at the target rate is read
as int16 and reaches the tf.Examples unchanged; anything else is downmixed and resampled (soxr HQ) as a stream.

Memory is bounded: the header is checked before any sample is read, and reading stops past ``max_seconds``.
With ``wanted``, only the spans ingestion will cut are decoded, where that saves work and the format seeks
sample-exactly. A file that holds less than its header promises is decoded as far as it goes, ``truncated``.
"""
from __future__ import annotations

import dataclasses
import io
import math
import struct
from typing import BinaryIO, Callable, Optional, Sequence, Union

import numpy as np
import soundfile as sf
import soxr

from audio import av_reader, levels

# Quarantine reason codes (stable strings: they are counted in summary.json).
EMPTY = "empty"                # 0 bytes, or a header with no samples
NOT_AUDIO = "not_audio"        # no known audio signature (e.g. a text file named .wav)
UNDECODABLE = "undecodable"    # looks like audio, but its reader (libsndfile or FFmpeg) cannot decode it
BAD_SAMPLE_RATE = "bad_sample_rate"      # declared rate outside [MIN_RATE, MAX_RATE]
IMPLAUSIBLE_HEADER = "implausible_header"  # absurd channel or frame count
TOO_LONG = "too_long"          # declared or decoded length above audio.max_clip_seconds
NON_FINITE = "non_finite"      # float samples with NaN or Inf
TOO_SHORT = "too_short"        # shorter than one segment
SILENT = levels.SILENT        # RMS level (DC removed) below audio.silence_dbfs
OUT_OF_RANGE = levels.OUT_OF_RANGE  # float samples peaking above levels.MAX_PEAK (the wrong scale)
DECODE_ERROR = "decode_error"  # any other exception while decoding one file (MemoryError, ...)
REASONS = (EMPTY, NOT_AUDIO, UNDECODABLE, BAD_SAMPLE_RATE, IMPLAUSIBLE_HEADER, TOO_LONG, NON_FINITE, TOO_SHORT,
           SILENT, OUT_OF_RANGE, DECODE_ERROR)

# Header plausibility: 4 kHz is below any real recording (telephone is 8 kHz); 384 kHz is the top interface rate.
MIN_RATE, MAX_RATE = 4000, 384000
MAX_CHANNELS = 64  # far more than any music file has; libsndfile itself stops at 1024
# Frames per read on the float path: 64 Ki frames is 0.25 MiB per channel.
BLOCK_FRAMES = 1 << 16

# Source read on each side of a window: soxr HQ's filter is a few ms long, so windows equal whole-file decoding.
CONTEXT_SECONDS = 0.1
# Windows are read only when they (with their context) cover at most this share of the track.
WINDOWED_MAX_FRACTION = 0.5
# libsndfile seeks these exactly (sample-accurate, tested); MP3 frame counts are estimates.
WINDOWED_FORMATS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "FLAC", "OGG"})
# libsndfile's Vorbis seek returns wrong samples for a target under 2 s ahead or in the last page: shorter
# gaps are read through, and no seek lands in the last page (_ogg_last_page).
OGG_MIN_SEEK_SECONDS = 3.0
_OGG_END_OF_STREAM = 0x04
_OGG_MAX_PAGE = 65307  # 27-byte header, 255 lacing values, 255 x 255 bytes of body

LIBSNDFILE, FFMPEG = "libsndfile", "ffmpeg"
_SNDFILE_SIGNATURES = (b"RIFF", b"RIFX", b"RF64", b"riff", b".snd", b"fLaC", b"ID3")
# ASF (WMA), EBML (Matroska, WebM), WavPack, Monkey's Audio, CAF, AMR, TTA, Musepack, RealAudio.
_FFMPEG_SIGNATURES = (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), bytes.fromhex("1a45dfa3"), b"wvpk",
                      b"MAC ", b"caff", b"#!AMR", b"TTA1", b"MPCK", b"MP+", b".ra\xfd")
# ISO base media files (MP4, M4A, 3GP, QuickTime) name their first box's type at byte 4.
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
# The first Ogg packet names the codec: Vorbis goes to libsndfile, the others to FFmpeg.
_OGG_VORBIS = b"\x01vorbis"
_HEAD_BYTES = 64  # an Ogg page header (27 bytes, a lacing value) and the start of its first packet
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # a RIFF data size written before the length was known, not a promise
# Encoder padding leaves FFmpeg within a few codec frames of the stated length; shorter than this is a cut file.
FFMPEG_LENGTH_SLACK_SECONDS = 0.25
# Where FFmpeg's seek and pre-roll give the whole-file samples exactly (tested); AAC, Opus, Vorbis, WMA and
# Matroska are decoded whole.
FFMPEG_WINDOWED_CONTAINERS = frozenset({"mov", "aiff"})
FFMPEG_WINDOWED_CODECS = frozenset({"alac", "flac"})


Sound = Union[sf.SoundFile, av_reader.AvSound]  # the two readers' file objects, read the same way


class BadAudio(Exception):
    """A file that cannot be ingested; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str, declared_seconds: Optional[float] = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.declared_seconds = declared_seconds  # too_long from the header: the length it declares


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
    """Mono samples at the target rate: int16 (lossless path) or float32 in [-1, 1]."""

    samples: np.ndarray
    source_rate: int
    source_channels: int
    truncated: bool = False  # the header promised more data than the file holds
    # Windowed decoding: the track's length at the target rate and the [start, end) spans ``samples`` holds.
    track_samples: Optional[int] = None
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def lossless(self) -> bool:
        return self.samples.dtype == np.int16

    @property
    def length(self) -> int:
        """Samples of the whole track at the target rate (decoded or not)."""
        return len(self.samples) if self.track_samples is None else self.track_samples

    def position(self, start: int) -> Optional[int]:
        """Where track sample ``start`` is in ``samples``; None when it was not decoded."""
        offset = 0
        for begin, end in self.spans or ((0, len(self.samples)),):
            if begin <= start < end:
                return offset + start - begin
            offset += end - begin
        return None


def _is_mpeg_sync(head: bytes) -> bool:
    """An MPEG audio frame header (MP3) or ADTS header (AAC): 11 set sync bits."""
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def looks_like_audio(head: bytes) -> bool:
    """A known container signature or an MPEG/ADTS frame sync; pass at least 16 bytes (AIFF names itself at 8)."""
    return (head.startswith(_SNDFILE_SIGNATURES + _FFMPEG_SIGNATURES + (b"OggS",))
            or (head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"))
            or head[4:8] in _MP4_BOXES or _is_mpeg_sync(head))


def reader_for(head: bytes) -> str:
    """:data:`LIBSNDFILE` or :data:`FFMPEG` for a file that :func:`looks_like_audio`, from its first bytes."""
    if head.startswith(b"OggS"):
        return LIBSNDFILE if head[28:35] == _OGG_VORBIS else FFMPEG
    if head.startswith(b"FORM"):
        return LIBSNDFILE if head[8:12] == b"AIFF" else FFMPEG  # AIFC may hold codecs libsndfile lacks
    if _is_mpeg_sync(head):
        return FFMPEG if head[1] & 0x06 == 0 else LIBSNDFILE  # layer bits 00: ADTS (AAC); else MP3
    return LIBSNDFILE if head.startswith(_SNDFILE_SIGNATURES) else FFMPEG


def ffmpeg_seeks_exactly(sound: av_reader.AvSound) -> bool:
    """True when a seek in this file gives the whole-file decoder's samples (FFMPEG_WINDOWED_*)."""
    return sound.format in FFMPEG_WINDOWED_CONTAINERS and (
        sound.subtype in FFMPEG_WINDOWED_CODECS or sound.subtype.startswith("pcm_"))


def riff_data_sizes(f: BinaryIO) -> Optional[tuple[int, int]]:
    """(declared, present) bytes of a RIFF WAV's data chunk, or None; leaves ``f`` at its start. libsndfile
    silently shortens a chunk that overruns the file: this tells a truncated WAV from a short one."""
    try:
        f.seek(0, io.SEEK_END)
        size = f.tell()
        f.seek(0)
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        position = 12
        while position + 8 <= size:
            f.seek(position)
            chunk_id, length = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                return None if length in _UNKNOWN_SIZES else (length, size - position - 8)
            position += 8 + length + (length & 1)
        return None
    finally:
        f.seek(0)


def _check_header(rate: int, channels: int, declared_frames: int, max_seconds: float) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(BAD_SAMPLE_RATE, f"the header declares {rate} Hz, outside the supported "
                                        f"{MIN_RATE}-{MAX_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadAudio(IMPLAUSIBLE_HEADER, f"the header declares {channels} channels (at most {MAX_CHANNELS})")
    if declared_frames < 0:
        raise BadAudio(IMPLAUSIBLE_HEADER, f"the header declares {declared_frames} frames")
    if declared_frames / rate > max_seconds:
        raise BadAudio(TOO_LONG, f"the header declares {declared_frames / rate:.1f} s of audio, more than "
                                 f"audio.max_clip_seconds = {max_seconds:g} s", declared_frames / rate)


def _too_long(max_seconds: float) -> BadAudio:
    return BadAudio(TOO_LONG, f"more than audio.max_clip_seconds = {max_seconds:g} s of audio decoded "
                              "(longer than its header says)")


def _read_float(f: Sound, target_rate: int, limit: float, max_seconds: float,
                frames: Optional[int] = None) -> tuple[np.ndarray, int]:
    """(samples, source frames read) of ``frames`` frames (None: to the end), downmixed and resampled in blocks."""
    stream = None if f.samplerate == target_rate else soxr.ResampleStream(
        f.samplerate, target_rate, 1, dtype="float32", quality="HQ")
    parts, read = [], 0
    while len(block := f.read(BLOCK_FRAMES if frames is None else min(BLOCK_FRAMES, frames - read),
                              dtype="float32", always_2d=True)):
        read += len(block)
        if read > limit:
            raise _too_long(max_seconds)
        if not np.isfinite(block).all():
            raise BadAudio(NON_FINITE, "the decoded samples contain NaN or Inf")
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        parts.append(mono if stream is None else stream.resample_chunk(mono, last=False))
        if frames is not None and read >= frames:
            break
    if stream is not None:
        parts.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return samples.astype(np.float32, copy=False), read


def _ogg_last_page(f: BinaryIO) -> Optional[tuple[int, int]]:
    """(granule position where the file's last Ogg page starts or -1, its flags); None for a file cut in a page.
    A page counts only where its length leads to the next page or the end ("OggS" may occur in packet data)."""
    here = f.tell()
    try:
        size = f.seek(0, io.SEEK_END)
        f.seek(max(0, size - 2 * _OGG_MAX_PAGE))
        tail = f.read(2 * _OGG_MAX_PAGE)
    finally:
        f.seek(here)
    granule_by_end: dict[int, int] = {}  # where a candidate page ends -> its granule position
    last_start = None
    at = tail.find(b"OggS")
    while 0 <= at <= len(tail) - 27:
        lacing = tail[at + 27:at + 27 + tail[at + 26]]
        end = at + 27 + len(lacing) + sum(lacing)
        granule_by_end[end] = struct.unpack_from("<q", tail, at + 6)[0]
        if end == len(tail):
            last_start = at
        at = tail.find(b"OggS", at + 4)
    if last_start is None:
        return None
    return granule_by_end.get(last_start, -1), tail[last_start + 5]


@dataclasses.dataclass
class _Read:
    """One seek and read: source frames [first, last) holding the target-rate spans."""

    first: int
    last: int
    spans: list[tuple[int, int]]


def _plan_reads(spans: Sequence[tuple[int, int]], frames: int, rate: int, target_rate: int,
                min_seek: int, no_seek_from: Optional[int]) -> Optional[list[_Read]]:
    """The reads that decode ``spans``, or None when they save too little. A read starts on a source frame that
    is a whole number of output samples, so its output lands on the whole-file grid."""
    step = rate // math.gcd(rate, target_rate)
    context = 0 if rate == target_rate else math.ceil(CONTEXT_SECONDS * rate)
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    reads: list[_Read] = []
    for start, end in merged:
        first = max(0, start * rate // target_rate - context) // step * step
        if first < min_seek:
            first = 0
        if no_seek_from is not None and first > 0:
            first = min(first, max(0, no_seek_from - 1) // step * step)
        last = min(frames, -(-end * rate // target_rate) + context)
        if reads and first <= reads[-1].last + min_seek:
            reads[-1].last = max(reads[-1].last, last)
            reads[-1].spans.append((start, end))
        else:
            reads.append(_Read(first, last, [(start, end)]))
    if not reads or sum(r.last - r.first for r in reads) > WINDOWED_MAX_FRACTION * frames:
        return None  # nothing wanted (shorter than a segment: whole decoding says so) or too little saved
    return reads


def _read_windows(sound: Sound, reads: list[_Read], target_rate: int, lossless: bool,
                  max_seconds: float) -> tuple[list[np.ndarray], list[tuple[int, int]], bool]:
    """(samples per span, spans, truncated); a failed or short read keeps the spans so far and marks truncation."""
    rate = sound.samplerate
    parts, done = [], []
    for read in reads:
        wanted = read.last - read.first
        try:
            if sound.tell() != read.first:
                sound.seek(read.first)
            if lossless:
                out = sound.read(wanted, dtype="int16", always_2d=True)[:, 0]
                got = len(out)
            else:
                out, got = _read_float(sound, target_rate, wanted, max_seconds, frames=wanted)
        except (sf.LibsndfileError, RuntimeError, ValueError):
            if not done:
                raise  # nothing read: undecodable, as whole decoding says
            return parts, done, True
        if got < wanted:
            return parts, done, True
        origin = read.first * target_rate // rate  # the track position of out[0]
        for start, end in read.spans:
            parts.append(out[start - origin:end - origin])
            done.append((start, end))
    return parts, done, False


Wanted = Callable[[int], Sequence[tuple[int, int]]]


def decode(source: Union[bytes, BinaryIO], target_rate: Optional[int], max_seconds: float = math.inf,
           wanted: Optional[Wanted] = None, reader: Optional[str] = None) -> DecodedAudio:
    """Decode bytes or a seekable file to mono at ``target_rate`` (None: the file's own); raises BadAudio.
    ``wanted`` maps the track's length to the spans the caller will use; ``reader`` forces one reader."""
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    head = f.read(_HEAD_BYTES)
    f.seek(0)
    if not head:
        raise BadAudio(EMPTY, "the file is empty (0 bytes)")
    if not looks_like_audio(head):
        raise BadAudio(NOT_AUDIO, f"no known audio signature (the file starts with {head[:16]!r})")
    ffmpeg = (reader or reader_for(head)) == FFMPEG
    # libsndfile counts the frames present; a RIFF header may promise more (truncated file).
    riff = None if ffmpeg else riff_data_sizes(f)
    promised = bool(riff and riff[0] > riff[1])
    # An Ogg stream's last page: no libsndfile seek lands in it, and FFmpeg takes the stream's length from it, so
    # a cut file is told by that page (not whole, or not marking the end of the stream).
    ogg = head.startswith(b"OggS")
    page = _ogg_last_page(f) if ogg else None
    ogg_cut = ogg and (page is None or not page[1] & _OGG_END_OF_STREAM)
    errors = av_reader.AvError if ffmpeg else (sf.LibsndfileError, RuntimeError, ValueError)
    try:
        with (av_reader.AvSound(f) if ffmpeg else sf.SoundFile(f)) as sound:
            rate, frames = sound.samplerate, sound.frames
            declared = frames * riff[0] // riff[1] if promised and riff[1] > 0 else frames
            _check_header(rate, sound.channels, declared, max_seconds)
            target_rate = rate if target_rate is None else target_rate
            pcm16 = sound.sample_format in ("s16", "s16p") if ffmpeg else sound.subtype == "PCM_16"
            lossless = pcm16 and sound.channels == 1 and rate == target_rate
            track = (2 * frames * target_rate + rate) // (2 * rate)  # soxr's length: frames * target / rate, halves up
            last_page = page[0] if page is not None and page[0] >= 0 else None
            min_seek = math.ceil(OGG_MIN_SEEK_SECONDS * rate) if ogg else 0
            if ffmpeg:  # never an Ogg file: FFmpeg windows MOV and AIFF only
                seeks = frames > 0 and sound.declared_exactly and ffmpeg_seeks_exactly(sound)
            else:  # sample-accurate seeks: WINDOWED_FORMATS, Ogg Vorbis only (one without a readable tail whole)
                seeks = sound.format in WINDOWED_FORMATS and sound.seekable() and (
                    not ogg or (sound.subtype == "VORBIS" and last_page is not None))
            reads = _plan_reads(wanted(track), frames, rate, target_rate, min_seek, last_page) if (
                wanted is not None and seeks) else None
            finite = math.isfinite(max_seconds)
            limit = int(max_seconds * rate) if finite else math.inf if ffmpeg else frames + 1
            read, cut, spans = None, False, []
            if reads is not None:
                parts, spans, cut = _read_windows(sound, reads, target_rate, lossless, max_seconds)
                samples = np.concatenate(parts) if parts else np.zeros(0, np.int16 if lossless else np.float32)
            elif lossless:
                samples = sound.read(limit + 1 if finite else -1, dtype="int16", always_2d=True)[:, 0]
                if len(samples) > limit:
                    raise _too_long(max_seconds)
                read = len(samples)
            else:
                samples, read = _read_float(sound, target_rate, limit, max_seconds)
            if ffmpeg:  # a stated length (not a bit-rate estimate) that the decoder falls well short of: a cut file
                short = read is not None and read < frames - FFMPEG_LENGTH_SLACK_SECONDS * rate
                cut = cut or (sound.declared_exactly and short) or sound.broken or ogg_cut
            else:  # MP3 frame counts are estimates; elsewhere fewer frames than the header's count means a cut file
                cut = cut or promised or (read is not None and read < frames and sound.subtype != "MPEG_LAYER_III")
    except errors as e:
        # LibsndfileError's str() names the BytesIO object; its error_string is the useful part.
        raise BadAudio(UNDECODABLE, f"{'FFmpeg' if ffmpeg else 'libsndfile'}: "
                                    f"{getattr(e, 'error_string', None) or e}") from None
    if samples.size == 0:
        raise BadAudio(EMPTY, "the header is valid but the file holds no samples (truncated?)")
    return DecodedAudio(samples=samples, source_rate=sound.samplerate, source_channels=sound.channels,
                        truncated=cut, track_samples=None if reads is None else track, spans=tuple(spans))


def load(source: Union[bytes, BinaryIO], sample_rate: int, segment_samples: int, silence_dbfs: float,
         max_seconds: float = math.inf, wanted: Optional[Wanted] = None) -> DecodedAudio:
    """decode(), then BadAudio unless the samples fill one segment and pass levels.py's rules: what ingestion does
    with each file."""
    audio = decode(source, sample_rate, max_seconds, wanted)
    n = len(audio.samples)
    if n < segment_samples:
        raise BadAudio(TOO_SHORT, f"{n / sample_rate:.3f} s of audio is shorter than one "
                                  f"{segment_samples / sample_rate:g} s segment")
    problem = levels.check(audio.samples, silence_dbfs)
    if problem is not None:
        raise BadAudio(problem.reason, problem.detail)
    return audio
