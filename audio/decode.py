"""Decode one audio file into mono samples at the pipeline's rate, or say why not.

Two readers, chosen by the file's leading bytes (:func:`reader_for`), never by its name:

- libsndfile (through soundfile) reads WAV, AU, FLAC, MP3, Ogg Vorbis and AIFF;
- FFmpeg (through PyAV, ``audio/av_reader.py``) reads every other container and codec: MP4/M4A
  (AAC, ALAC), ADTS AAC, Ogg Opus and Ogg's other codecs, WebM and Matroska, WMA (ASF), AIFF-C,
  CAF, WavPack.

Where both read a format the faster one decodes it, measured per format (``python -m bench.ingestion
--formats``, BENCHMARKS.md "Decoding per format": 60 s of 44.1 kHz stereo to 22050 Hz mono, CPU time,
seven runs on 2 shared cores). libsndfile is faster for WAV (1.1-1.6x), FLAC (1.03-1.3x), MP3
(1.14-1.8x), AU (1.02-1.4x) and AIFF (1.3-1.6x); Ogg Vorbis is a tie (FFmpeg 1.07x faster in one run,
libsndfile up to 1.2x in the others), so libsndfile keeps it, and with it exact windows. FFmpeg is
1.5-1.8x faster for Opus, which it therefore reads. Both
give the same samples on the real GTZAN clips: FLAC and WAV identical, Ogg Vorbis within 6e-7, MP3
within 3e-6 (two MP3 decoders), after the same resampling (``decode_test.py``'s parity tests).
No librosa/audioread fallback is needed (audioread depends on whatever ffmpeg/GStreamer the machine
happens to have; PyAV carries its own FFmpeg in its wheel).

Lossless path: a 16-bit mono file already at the target rate (all of GTZAN) is read as
int16 and never passes through float, so its samples reach the tf.Examples unchanged.
Anything else is read as float32 in blocks, each block downmixed by averaging the channels
and resampled with soxr's HQ preset (what ``librosa.resample`` uses by default,
``res_type="soxr_hq"``) as a stream: the same samples as resampling the whole file at once.

Memory is bounded by design, through either reader: the header is checked before any sample is
read (sample rate in [MIN_RATE, MAX_RATE], at most MAX_CHANNELS channels, declared length at most
``max_seconds``; a container that states no length, such as a browser's WebM recording, is held by
the next rule alone), the file is read from its file object (never as one bytes string), and
reading stops once more than ``max_seconds`` were decoded, whatever the header said. So a
file holds at most ``max_seconds`` of mono samples at the target rate, plus one block.

Windowed decoding: ingestion keeps at most ``audio.max_segments_per_track`` segments of a
track, so :func:`decode` takes ``wanted``, the spans of the track (at the target rate) it will
cut, decided from the header's frame count. Where that saves work (the reads cover at most
:data:`WINDOWED_MAX_FRACTION` of the track) and the format seeks exactly (:func:`seeks_exactly`),
only those spans are read: each one with :data:`CONTEXT_SECONDS` of source on both sides, started
on a source frame that falls on an output sample, resampled on its own and trimmed. soxr's HQ
filter is linear-phase and a few ms long, so a window equals whole-file decoding at the same
positions to float rounding (measured below 1e-6; tested below 1e-5); the int16 path and the
float path without resampling read the very same samples. Through FFmpeg, windows are read only
for ALAC, FLAC and PCM in MP4 and AIFF-C (:func:`ffmpeg_seeks_exactly`): FFmpeg's AAC after a seek
near the start, Opus (its pre-roll converges, 2.5e-4 off), WMA and Matroska (millisecond
timestamps) do not give the whole-file samples, so they are decoded whole. Everything else (MP3,
whose frame counts are estimates; short clips such as GTZAN's 30 s) is decoded whole, as before.

A file that cannot become at least one segment of real audio raises :class:`BadAudio`
with a reason code from :data:`REASONS`; the caller turns it into a quarantine record.
A file whose header promises more data than it holds is decoded as far as it goes and
marked ``truncated``; read in windows, it keeps the windows read before a seek or read failed.
Through FFmpeg a file is marked ``truncated`` when decoding stops at an error after some audio,
when it falls more than FFMPEG_LENGTH_SLACK_SECONDS short of a stated (not estimated) length, or,
for Ogg, when its last page is cut or lacks the end-of-stream mark; an MP4 cut before its index
(written after the audio, as players write it) is ``undecodable``.
The silence and range checks (:func:`check_usable`) judge what was decoded: for a windowed
track, its kept windows.
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

# Header plausibility. 4 kHz is below any real recording's rate (telephone audio is 8 kHz);
# 384 kHz is the highest rate audio interfaces record at. A 1 Hz header turned 4 KB into
# 2000 s of audio before this check.
MIN_RATE, MAX_RATE = 4000, 384000
MAX_CHANNELS = 64  # far more than any music file has; libsndfile itself stops at 1024
# Frames per read on the float path: 64 Ki frames is 0.25 MiB per channel.
BLOCK_FRAMES = 1 << 16

# Windowed decoding. Source read on each side of a window for the resampler: soxr HQ's filter
# is a few ms long, so 100 ms leaves the window's samples equal to whole-file decoding.
CONTEXT_SECONDS = 0.1
# Windows are read only when they (with their context) cover at most this share of the track.
WINDOWED_MAX_FRACTION = 0.5
# libsndfile seeks these exactly (sample-accurate, tested); MP3 frame counts are estimates.
WINDOWED_FORMATS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "FLAC", "OGG"})
# libsndfile's Vorbis seek decodes forward for a target less than 2 s ahead and then returns wrong
# samples, as it does for a target in the stream's last page: shorter gaps are read through, and
# no seek lands in the last page (_ogg_last_page_start).
OGG_MIN_SEEK_SECONDS = 3.0
# An Ogg page header's flag for the stream's last page.
_OGG_END_OF_STREAM = 0x04
# Largest Ogg page (27-byte header, 255 lacing values, 255 x 255 bytes of body).
_OGG_MAX_PAGE = 65307

# The two readers, chosen by the file's leading bytes (reader_for).
LIBSNDFILE, FFMPEG = "libsndfile", "ffmpeg"
# Leading bytes of the containers libsndfile reads here: WAV/RF64/W64, AU, FLAC, MP3 (ID3 or a frame sync),
# Ogg (Vorbis only: reader_for), AIFF.
_SNDFILE_SIGNATURES = (b"RIFF", b"RIFX", b"RF64", b"riff", b".snd", b"fLaC", b"ID3")
# Leading bytes of the containers only FFmpeg reads here: ASF (WMA), EBML (Matroska, WebM), WavPack,
# Monkey's Audio, CAF, AMR, TTA, Musepack, RealAudio.
_FFMPEG_SIGNATURES = (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), bytes.fromhex("1a45dfa3"), b"wvpk",
                      b"MAC ", b"caff", b"#!AMR", b"TTA1", b"MPCK", b"MP+", b".ra\xfd")
# ISO base media files (MP4, M4A, 3GP, QuickTime) name their first box's type at byte 4.
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
# The first Ogg packet names the codec: Vorbis goes to libsndfile, Opus, FLAC and Speex to FFmpeg.
_OGG_VORBIS = b"\x01vorbis"
# Bytes decode() reads to tell the format: an Ogg page header (27 bytes, a lacing value) and a packet's start.
_HEAD_BYTES = 64
# A RIFF data chunk of this size is a stream written before its length was known, not a promise.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
# FFmpeg decodes codecs with encoder padding to within a few codec frames of the stated length (WMA 46 ms
# short, AAC 16 samples long); falling shorter than this is a cut file.
FFMPEG_LENGTH_SLACK_SECONDS = 0.25
# FFmpeg's seek then pre-roll (av_reader.AvSound.seek) gives the whole-file decoder's samples exactly for these
# codecs in these containers (tested); AAC, Opus, Vorbis and WMA come out different near a seek, and Matroska's
# millisecond timestamps place a seek inexactly: those are decoded whole.
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
    source_subtype: str
    truncated: bool = False  # the header promised more data than the file holds
    # Windowed decoding: the whole track's length at the target rate (from the header), and the
    # [start, end) spans of it that ``samples`` holds, one after the other. None and (): the whole track.
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
        if not self.spans:
            return start if 0 <= start < len(self.samples) else None
        offset = 0
        for begin, end in self.spans:
            if begin <= start < end:
                return offset + start - begin
            offset += end - begin
        return None


def _is_mpeg_sync(head: bytes) -> bool:
    """An MPEG audio frame header (MP3) or ADTS header (AAC): 11 set sync bits."""
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def looks_like_audio(head: bytes) -> bool:
    """True when the first bytes carry a known container signature or an MPEG/ADTS frame sync. Pass at least
    16 bytes: an MP4 file names its type at byte 4, AIFF at byte 8."""
    return (head.startswith(_SNDFILE_SIGNATURES + _FFMPEG_SIGNATURES + (b"OggS",))
            or (head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"))
            or head[4:8] in _MP4_BOXES or _is_mpeg_sync(head))


def reader_for(head: bytes) -> str:
    """Which reader decodes a file that :func:`looks_like_audio`, from its first bytes: :data:`LIBSNDFILE` for
    WAV, AU, FLAC, MP3, Ogg Vorbis and AIFF, :data:`FFMPEG` for every other container and codec."""
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


def _libsndfile_message(error: Exception) -> str:
    # LibsndfileError's str() names the BytesIO object; its error_string is the useful part.
    return getattr(error, "error_string", None) or str(error)


def riff_data_sizes(f: BinaryIO) -> Optional[tuple[int, int]]:
    """(declared, present) bytes of a RIFF WAV's data chunk, or None (not RIFF, no data chunk,
    unknown size). libsndfile silently shortens a data chunk that overruns the file, so this
    is how a truncated WAV is told from a short one. Leaves ``f`` at its start."""
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
    """Blocks -> finite check -> mono -> streamed resampling of ``frames`` frames (None: to the end);
    returns (samples, source frames read)."""
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


def resampled_length(frames: int, rate: int, target_rate: int) -> int:
    """Samples soxr gives for ``frames`` source frames: frames * target / rate, halves rounded up."""
    return (2 * frames * target_rate + rate) // (2 * rate)


def seeks_exactly(sound: sf.SoundFile) -> bool:
    """True when libsndfile seeks this file sample-accurately (WINDOWED_FORMATS, Ogg Vorbis only)."""
    if sound.format not in WINDOWED_FORMATS or not sound.seekable():
        return False
    return sound.format != "OGG" or sound.subtype == "VORBIS"


def _ogg_last_page(f: BinaryIO) -> Optional[tuple[int, int]]:
    """Of the Ogg page that ends the file, read from its tail: (the granule position where it starts, that is
    the page before it ends, -1 when unknown; its header flags). None when no page ends where the file does (a
    file cut inside a page). A page counts only where its length leads to the
    next page or the file's end, so "OggS" inside packet data is not taken for one. Leaves ``f`` where it was."""
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


def _ogg_last_page_start(f: BinaryIO) -> Optional[int]:
    """The granule position (frames) where an Ogg stream's last page starts; None when not found."""
    page = _ogg_last_page(f)
    return page[0] if page is not None and page[0] >= 0 else None


def ogg_ends_cleanly(f: BinaryIO) -> bool:
    """True when an Ogg file's last page is whole and marks the end of its stream (a cut file's is not)."""
    page = _ogg_last_page(f)
    return page is not None and bool(page[1] & _OGG_END_OF_STREAM)


@dataclasses.dataclass
class _Read:
    """One seek and read: source frames [first, last) holding the target-rate spans."""

    first: int
    last: int
    spans: list[tuple[int, int]]


def _plan_reads(spans: Sequence[tuple[int, int]], frames: int, rate: int, target_rate: int,
                min_seek: int, no_seek_from: Optional[int]) -> Optional[list[_Read]]:
    """The reads that decode ``spans`` (target-rate [start, end)), or None when they save too little.

    A read starts CONTEXT_SECONDS early (none without resampling) on a source frame that is a whole
    number of output samples (a multiple of rate / gcd), so its output lands on the whole-file grid.
    """
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
    """Seek and decode each read; returns (samples per span, spans, truncated). A seek or read that
    fails or comes back short ends the reading: the spans read so far are kept, the file is truncated."""
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
    """Decode a file (its bytes, or a seekable binary file object) to mono at ``target_rate``
    (None: the file's own rate, as the serving client sends it; the header is checked all the same).

    ``wanted``: given the track's length at the target rate, the [start, end) spans the caller will
    use; when windowed decoding pays (module docstring) only those are decoded. None: the whole file.
    Raises BadAudio; reads at most ``max_seconds`` of the source (see the module docstring).
    ``reader``: :data:`LIBSNDFILE` or :data:`FFMPEG` for a format both read (the parity tests and the decoding
    benchmark compare them); None: :func:`reader_for` chooses.
    """
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    head = f.read(_HEAD_BYTES)
    f.seek(0)
    if not head:
        raise BadAudio(EMPTY, "the file is empty (0 bytes)")
    if not looks_like_audio(head):
        raise BadAudio(NOT_AUDIO, f"no known audio signature (the file starts with {head[:16]!r})")
    if (reader or reader_for(head)) == FFMPEG:
        return _decode_ffmpeg(f, target_rate, max_seconds, wanted)
    riff = riff_data_sizes(f)
    try:
        with sf.SoundFile(f) as sound:
            rate, frames = sound.samplerate, sound.frames
            # libsndfile counts the frames present; a RIFF header may promise more (truncated file).
            declared = frames * riff[0] // riff[1] if riff and riff[1] > 0 and riff[0] > riff[1] else frames
            _check_header(rate, sound.channels, declared, max_seconds)
            target_rate = rate if target_rate is None else target_rate
            limit = int(max_seconds * rate) if math.isfinite(max_seconds) else frames + 1
            lossless = sound.subtype == "PCM_16" and sound.channels == 1 and rate == target_rate
            reads: Optional[list[_Read]] = None
            track = resampled_length(frames, rate, target_rate)
            if wanted is not None and seeks_exactly(sound):
                ogg = sound.format == "OGG"
                last_page = _ogg_last_page_start(f) if ogg else None
                if not ogg or last_page is not None:  # an Ogg file without a readable tail is decoded whole
                    reads = _plan_reads(wanted(track), frames, rate, target_rate,
                                        math.ceil(OGG_MIN_SEEK_SECONDS * rate) if ogg else 0, last_page)
            samples, read, cut, windowed = _read_samples(sound, reads, track, target_rate, lossless, limit,
                                                         min(frames, limit + 1), max_seconds)
            # MP3 frame counts are estimates; elsewhere fewer frames than the header's count means a cut file.
            cut = cut or (read is not None and read < frames and sound.subtype != "MPEG_LAYER_III")
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise BadAudio(UNDECODABLE, f"libsndfile: {_libsndfile_message(e)}") from None
    return _decoded(samples, sound, lossless, bool(riff and riff[0] > riff[1]) or cut, windowed)


def _decode_ffmpeg(f: BinaryIO, target_rate: Optional[int], max_seconds: float,
                   wanted: Optional[Wanted]) -> DecodedAudio:
    """decode() for the containers FFmpeg reads (:data:`FFMPEG_CONTAINERS`)."""
    # FFmpeg takes an Ogg stream's length from its last page, so a cut Ogg file is told by that page.
    ogg_cut = f.read(4) == b"OggS" and not ogg_ends_cleanly(f)
    f.seek(0)
    try:
        with av_reader.AvSound(f) as sound:
            rate, frames = sound.samplerate, sound.frames
            _check_header(rate, sound.channels, frames, max_seconds)
            target_rate = rate if target_rate is None else target_rate
            limit = int(max_seconds * rate) if math.isfinite(max_seconds) else math.inf
            lossless = sound.sample_format in ("s16", "s16p") and sound.channels == 1 and rate == target_rate
            track = resampled_length(frames, rate, target_rate)
            reads = None
            if wanted is not None and frames > 0 and sound.declared_exactly and ffmpeg_seeks_exactly(sound):
                reads = _plan_reads(wanted(track), frames, rate, target_rate, 0, None)
            samples, read, cut, windowed = _read_samples(sound, reads, track, target_rate, lossless, limit,
                                                         limit + 1 if math.isfinite(limit) else -1, max_seconds)
            # A stated length (not a bit-rate estimate) that the decoder falls well short of: a cut file.
            short = (read is not None and sound.declared_exactly
                     and read < frames - FFMPEG_LENGTH_SLACK_SECONDS * rate)
            cut = cut or sound.broken or short or ogg_cut
    except av_reader.AvError as e:
        raise BadAudio(UNDECODABLE, f"FFmpeg: {e}") from None
    return _decoded(samples, sound, lossless, cut, windowed)


def _read_samples(sound: Sound, reads: Optional[list[_Read]], track: int, target_rate: int, lossless: bool,
                  limit: float, lossless_count: int, max_seconds: float
                  ) -> tuple[np.ndarray, Optional[int], bool, dict]:
    """The samples of ``reads`` (windowed) or of the whole file: (samples, source frames read (None when
    windowed), cut (a window read failed), the DecodedAudio fields of a windowed decode)."""
    if reads is not None:
        parts, spans, cut = _read_windows(sound, reads, target_rate, lossless, max_seconds)
        samples = np.concatenate(parts) if parts else np.zeros(0, np.int16 if lossless else np.float32)
        return samples, None, cut, {"track_samples": track, "spans": tuple(spans)}
    if lossless:
        samples = sound.read(lossless_count, dtype="int16", always_2d=True)[:, 0]
        if len(samples) > limit:
            raise _too_long(max_seconds)
        return samples, len(samples), False, {}
    samples, read = _read_float(sound, target_rate, limit, max_seconds)
    return samples, read, False, {}


def _decoded(samples: np.ndarray, sound: Sound, lossless: bool, truncated: bool, windowed: dict) -> DecodedAudio:
    if samples.size == 0:
        raise BadAudio(EMPTY, "the header is valid but the file holds no samples (truncated?)")
    return DecodedAudio(samples=samples, source_rate=sound.samplerate, source_channels=sound.channels,
                        source_subtype=sound.subtype, truncated=truncated, **windowed)


def check_usable(audio: DecodedAudio, segment_samples: int, sample_rate: int, silence_dbfs: float) -> None:
    """Raise BadAudio unless the audio fills one segment and passes levels.py's amplitude and silence rules,
    judged on the decoded samples (for a windowed track: its kept windows)."""
    n = len(audio.samples)
    if n < segment_samples:
        raise BadAudio(TOO_SHORT, f"{n / sample_rate:.3f} s of audio is shorter than one "
                                  f"{segment_samples / sample_rate:g} s segment")
    problem = levels.check(audio.samples, silence_dbfs)
    if problem is not None:
        raise BadAudio(problem.reason, problem.detail)


def load(source: Union[bytes, BinaryIO], sample_rate: int, segment_samples: int, silence_dbfs: float,
         max_seconds: float = math.inf, wanted: Optional[Wanted] = None) -> DecodedAudio:
    """decode() followed by check_usable(): what ingestion does with each file."""
    audio = decode(source, sample_rate, max_seconds, wanted)
    check_usable(audio, segment_samples, sample_rate, silence_dbfs)
    return audio
