"""An uploaded or recorded clip, decoded and checked before it is sent to the model.

Every way a clip can be unusable gets a :class:`ClipError` naming the file, the problem and the fix. The
decoder is the client's own (serving/audio_file.py), so the page and the CLI accept the same files.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile

import numpy as np

from app import audibility
from app.settings import upload_limit_bytes
from audio import levels
from config.settings import AUDIO_EXTENSIONS, AudioConfig, PipelineConfig
from serving.audio_file import AudioFileError, AudioTooLongError, read_audio

SUPPORTED = ", ".join(AUDIO_EXTENSIONS)


class ClipError(ValueError):
    """A clip the page will not send; the message is for the person who chose it."""


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str
    waveform: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.waveform.size / self.sample_rate


def decode(name: str, data: bytes, max_seconds: float, audio: AudioConfig = PipelineConfig().audio,
           recorded: bool = False) -> Clip:
    """Decode DATA (the bytes of file NAME) and check it is a clip the model can judge, with a message for a
    person where the serving graph would refuse it, or app/audibility.py finds it too noisy or quiet."""
    min_seconds = audio.segment_seconds
    if not data:
        raise ClipError(f"{name} is empty (0 bytes). Choose an audio file ({SUPPORTED}) or record again.")
    limit = upload_limit_bytes(max_seconds)
    if len(data) > limit:
        raise ClipError(f"{name} is {len(data) / 2**20:.0f} MB, over this page's limit of {limit / 2**20:.0f} MB for "
                        f"a clip of at most {max_seconds / 60:g} min. Trim it, or convert it to FLAC or 16-bit WAV.")
    suffix = os.path.splitext(name)[1].lower() or ".wav"
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:  # the one reader takes a path
        f.write(data)
        f.flush()
        try:
            waveform, sample_rate = read_audio(f.name, max_seconds)
        except AudioTooLongError as err:
            length = f"{err.declared_seconds / 60:.1f} min long" if err.declared_seconds else "longer than it says"
            raise ClipError(f"{name} is {length}, over this page's limit of {max_seconds / 60:g} min per request to "
                            "the model server (serving.max_clip_seconds). Trim the clip, or start the page with a "
                            "higher GENRE_APP_MAX_SECONDS.") from None
        except AudioFileError as err:
            detail = str(err).split(": ", 1)[-1].split(" (supported formats")[0]
            raise ClipError(f"{name} could not be decoded as audio ({detail}). Choose a {SUPPORTED} file; "
                            "if it plays elsewhere, convert it to WAV or FLAC first.") from None
    seconds = waveform.size / sample_rate if sample_rate else 0.0
    if waveform.size == 0:
        raise ClipError(f"{name} holds no audio samples. Choose a clip of at least {min_seconds:g} s.")
    if not np.all(np.isfinite(waveform)):
        raise ClipError(f"{name} contains invalid (NaN or infinite) samples. Re-export it as 16-bit PCM.")
    if seconds < min_seconds:
        raise ClipError(f"{name} is {seconds:.1f} s long; the model judges {min_seconds:g}-s segments, so it "
                        f"needs at least {min_seconds:g} s. Choose or record a longer clip.")
    problem = levels.check(waveform, audio.silence_dbfs)
    if problem is not None and problem.reason == levels.OUT_OF_RANGE:
        raise ClipError(f"{name} is not on the audio scale: {problem.detail}. Re-export it as 16-bit PCM.")
    if problem is not None:
        level = levels.level_dbfs(waveform)
        shown = ("digital silence" if math.isinf(level)
                 else f"its level is {level:.0f} dBFS once any DC offset is removed")
        raise ClipError(f"{name} is silent ({shown}, below {audio.silence_dbfs:g} dBFS): there is nothing for "
                        "the model to hear. Check the recording level or choose another clip.")
    unjudgeable = audibility.problem(name, waveform, sample_rate, recorded)
    if unjudgeable:
        raise ClipError(unjudgeable)
    return Clip(name, waveform, sample_rate)
