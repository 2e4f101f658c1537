"""Audio files as a person's library holds them: every format of synthetic/formats.py, genre, artist and album
tags written with mutagen."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import mutagen
import numpy as np
from mutagen import id3
from mutagen.mp4 import MP4

from synthetic.formats import FORMATS, MORE_FORMATS, encode  # noqa: F401


def encode_recording(path: Path, samples: np.ndarray, rate: int) -> Path:
    """A WebM/Opus as a browser's MediaRecorder writes it: streamed as recorded, so its header states no
    length and it has no index."""
    return encode(path, samples, rate, "webm", {"live": "1"})


def encode_streamable(path: Path, samples: np.ndarray, rate: int, fmt: str) -> Path:
    """encode() for an MP4 format ("aac", "alac", "mp4") with its index (moov) before the audio, as files made
    for streaming are: a cut copy still opens."""
    return encode(path, samples, rate, fmt, {"movflags": "faststart"})


def with_alac_header(data: bytes, rate: Optional[int] = None, channels: Optional[int] = None) -> bytes:
    """An ALAC .m4a's bytes with the sample rate and/or channel count its header declares replaced, in the
    sample entry and in ALAC's own configuration (FFmpeg reads the latter): a hostile or broken header."""
    out = bytearray(data)
    outer = data.find(b"alac", data.find(b"stsd")) - 4  # the sample entry
    inner = data.find(b"alac", outer + 8) - 4  # ALACSpecificConfig, inside it
    if rate is not None:
        struct.pack_into(">I", out, inner + 32, rate)
        struct.pack_into(">I", out, outer + 32, min(rate, 65535) << 16)  # 16.16 fixed point
    if channels is not None:
        out[inner + 21] = channels
        struct.pack_into(">H", out, outer + 24, channels)
    return bytes(out)


def tag(path: Path, *, genre: Optional[str] = None, artist: Optional[str] = None, album: Optional[str] = None,
        title: Optional[str] = None, id3_version: int = 4) -> None:
    """Write the given tags into PATH the way players do: ID3 (v2.3, v2.4, or v1 with ID3_VERSION=1,
    whose genre is a number of its list) for MP3, AIFF and WAV, MP4 atoms for .m4a, ASF attributes for
    .wma, Vorbis comments for FLAC, Ogg and Opus. A tag left None is not written."""
    path = Path(path)
    fields = {"genre": genre, "artist": artist, "album": album, "title": title}
    suffix = path.suffix.lower()
    if suffix in (".mp3", ".aiff", ".aif", ".wav"):
        _tag_id3(path, fields, id3_version)
    elif suffix == ".m4a":
        audio = MP4(str(path))
        atoms = {"genre": "\xa9gen", "artist": "\xa9ART", "album": "\xa9alb", "title": "\xa9nam"}
        for key, value in fields.items():
            if value is not None:
                audio[atoms[key]] = [value]
        audio.save()
    elif suffix == ".wma":
        audio = mutagen.File(str(path))
        names = {"genre": "WM/Genre", "artist": "Author", "album": "WM/AlbumTitle", "title": "Title"}
        for key, value in fields.items():
            if value is not None:
                audio[names[key]] = [value]
        audio.save()
    else:
        audio = mutagen.File(str(path))
        if audio is None:
            raise ValueError(f"mutagen does not read {path}")
        if audio.tags is None:
            audio.add_tags()
        for key, value in fields.items():
            if value is not None:
                audio[key] = [value]
        audio.save()


def _tag_id3(path: Path, fields: dict[str, Optional[str]], version: int) -> None:
    if version == 1:
        _write_id3v1(path, fields)
        return
    audio = mutagen.File(str(path))
    if audio.tags is None:
        audio.add_tags()
    frames = {"genre": id3.TCON, "artist": id3.TPE1, "album": id3.TALB, "title": id3.TIT2}
    for key, value in fields.items():
        if value is not None:
            audio.tags.add(frames[key](encoding=3, text=[value]))
    audio.save(v2_version=version)


ID3V1_GENRES = ("Blues", "Classic Rock", "Country", "Dance", "Disco", "Funk", "Grunge", "Hip-Hop", "Jazz", "Metal",
                "New Age", "Oldies", "Other", "Pop", "R&B", "Rap", "Reggae", "Rock")


def _write_id3v1(path: Path, fields: dict[str, Optional[str]]) -> None:
    """A 128-byte ID3v1 tag at the end of the file; the genre as the number of ID3v1's list."""
    def text(value: Optional[str], size: int) -> bytes:
        return (value or "").encode("latin-1", "replace")[:size].ljust(size, b"\0")
    genre = fields["genre"]
    number = 255
    if genre is not None:
        names = [g.lower() for g in ID3V1_GENRES]
        number = names.index(genre.lower())
    block = (b"TAG" + text(fields["title"], 30) + text(fields["artist"], 30) + text(fields["album"], 30)
             + b"2026" + b"\0" * 30 + bytes([number]))
    with open(path, "ab") as f:
        f.write(block)


# A library's variants: each format of FORMATS, MP3 once per ID3 version players meet.
VARIANTS: dict[str, tuple[str, int]] = {  # variant -> (format, ID3 version for tag())
    "aac": ("aac", 4), "alac": ("alac", 4), "opus": ("opus", 4), "aiff": ("aiff", 4),
    "mp3_id3v23": ("mp3", 3), "mp3_id3v24": ("mp3", 4), "mp3_id3v1": ("mp3", 1),
    "flac": ("flac", 4), "wav": ("wav", 4), "wma": ("wma", 4),
}


def every_format(folder: Path, samples: np.ndarray, rate: int, genre: str = "Rock") -> dict[str, Path]:
    """SAMPLES encoded as every variant of :data:`VARIANTS` in FOLDER (``<variant>.<ext>``), each tagged with
    GENRE, an artist and an album as a player would; returns variant -> path."""
    paths = {}
    for variant, (fmt, id3_version) in VARIANTS.items():
        path = encode(Path(folder) / variant, samples, rate, fmt)
        if id3_version == 1 and fmt == "mp3":  # FFmpeg's MP3 muxer writes an ID3v2.4 tag of its own: an ID3v1-only file
            id3.delete(str(path), delete_v1=True, delete_v2=True)
        tag(path, genre=genre, artist="The Testers", album="Every Format", title=variant, id3_version=id3_version)
        paths[variant] = path
    return paths


def album_track(root: Path, artist: str, album: str, number: int, title: str, samples: np.ndarray, rate: int,
                fmt: str, genre: Optional[str] = None, id3_version: int = 4) -> Path:
    """One track laid out as a library keeps it, ``ROOT/Artist/Album/NN Title.<ext>``, encoded in FMT (a key of
    FORMATS) and tagged with its artist, album, title and GENRE as a player would (:func:`tag`)."""
    path = encode(Path(root) / artist / album / f"{number:02d} {title}", samples, rate, fmt)
    tag(path, genre=genre, artist=artist, album=album, title=title, id3_version=id3_version)
    return path
