"""What the page's player is handed: the upload as it is where browsers play its codec, else the decoded clip.

Browsers play WAV (16- and 8-bit PCM), FLAC, MP3, AAC, Vorbis and Opus, but not ALAC, WMA, AIFF, AU or
WavPack, and neither a file's name nor its mime type tells which: an .m4a holds AAC or ALAC, an .ogg Vorbis,
Opus or FLAC, a .wav PCM or ADPCM. So the codec is read from the file's header (FFmpeg opens the container; no
sample is decoded), and a clip browsers cannot play is heard as the page's one decode of it, written as WAV.
"""
from __future__ import annotations

import io

import av
import numpy as np
import soundfile as sf
import soxr

from app.clip import Clip

# (FFmpeg's container, codec) -> the mime type browsers play it under: those codecs in their usual containers.
PLAYABLE = {("wav", "pcm_s16le"): "audio/wav", ("wav", "pcm_u8"): "audio/wav", ("flac", "flac"): "audio/flac",
            ("mp3", "mp3float"): "audio/mpeg", ("mp3", "mp3"): "audio/mpeg", ("mov", "aac"): "audio/mp4",
            ("aac", "aac"): "audio/aac", ("ogg", "vorbis"): "audio/ogg", ("ogg", "opus"): "audio/ogg",
            ("matroska", "opus"): "audio/webm", ("matroska", "vorbis"): "audio/webm"}
# What FFmpeg reads to name the codec: enough for each header (it skips ID3 tags and seeks to an MP4's index);
# its default of 5 MB costs an upload 20-60 ms.
PROBE_BYTES = "32768"
# A re-encoded clip is resampled down to this rate at most: at the page's default 10-min limit its WAV is under 60 MB.
MAX_RATE = 48000


def playable_mime(data: bytes) -> str | None:
    """The mime type under which browsers play DATA as it is; None where they cannot (or FFmpeg cannot tell)."""
    try:
        with av.open(io.BytesIO(data), "r", metadata_errors="ignore", options={"probesize": PROBE_BYTES}) as f:
            return PLAYABLE.get((f.format.name.split(",")[0], f.streams.audio[0].codec_context.name))
    except (av.FFmpegError, IndexError, ValueError, OverflowError):  # not audio FFmpeg reads: the decoded clip
        return None


def for_browser(data: bytes, clip: Clip) -> tuple[bytes, str]:
    """(bytes, mime type) for the page's player: DATA where browsers play it, else CLIP as 16-bit WAV."""
    mime = playable_mime(data)
    if mime is not None:
        return data, mime
    rate = min(clip.sample_rate, MAX_RATE)
    samples = clip.waveform if rate == clip.sample_rate else soxr.resample(clip.waveform, clip.sample_rate, rate)
    wav = io.BytesIO()
    sf.write(wav, np.clip(samples, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return wav.getvalue(), "audio/wav"
