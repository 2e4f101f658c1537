"""Which tag field holds the predicted genre and its score, per container, read and set with mutagen.

By default the prediction goes into the project's own fields, so the genre the owner chose stays;
``genre_field=True`` writes the genre into the standard field players show. The score has no standard field.

| container (tags) | genre (default) | genre (``genre_field``) | score |
|---|---|---|---|
| MP3, AIFF, WAV (ID3v2) | ``TXXX:GENRE_PREDICTED`` | ``TCON`` | ``TXXX:GENRE_SCORE`` |
| MP4 / .m4a (atoms) | ``----:com.genre-pipeline:GENRE_PREDICTED`` | ``©gen`` | ``----:com.genre-pipeline:GENRE_SCORE`` |
| FLAC, Ogg, Opus (Vorbis comments) | ``GENRE_PREDICTED`` | ``GENRE`` | ``GENRE_SCORE`` |
| WMA (ASF attributes) | ``GENRE_PREDICTED`` | ``WM/Genre`` | ``GENRE_SCORE`` |
"""
from __future__ import annotations

from typing import Any, Optional

import mutagen

GENRE_NAME, SCORE_NAME = "GENRE_PREDICTED", "GENRE_SCORE"
MP4_MEAN = "com.genre-pipeline"  # the freeform atoms' reverse-DNS owner, as iTunes uses com.apple.iTunes
ID3, MP4, VORBIS, ASF = "id3", "mp4", "vorbis", "asf"
STANDARD_GENRE = {ID3: "TCON", MP4: "\xa9gen", VORBIS: "GENRE", ASF: "WM/Genre"}
NEW_ID3_VERSION = 3  # ID3v2 minor version for a file without an ID3v2 tag yet: v2.3 is what every player reads


def kind_of(audio: mutagen.FileType) -> Optional[str]:
    """``id3``, ``mp4``, ``vorbis`` or ``asf``: how this file keeps its tags (None: a kind not written)."""
    from mutagen import aiff, asf, flac, id3, mp4, ogg, wave
    kinds = {ID3: (id3.ID3FileType, wave.WAVE, aiff.AIFF), MP4: (mp4.MP4,),
             VORBIS: (flac.FLAC, ogg.OggFileType), ASF: (asf.ASF,)}
    return next((kind for kind, classes in kinds.items() if isinstance(audio, classes)), None)


def wanted(kind: str, genre: str, score: float, genre_field: bool) -> dict[str, str]:
    """Key in this kind's spelling -> text: the genre as the model names it, the score with four decimals."""
    prefix = {ID3: "TXXX:", MP4: f"----:{MP4_MEAN}:"}.get(kind, "")
    genre_key = STANDARD_GENRE[kind] if genre_field else prefix + GENRE_NAME
    return {genre_key: genre, prefix + SCORE_NAME: f"{score:.4f}"}


def read(audio: mutagen.FileType, keys: list[str]) -> dict[str, Optional[str]]:
    """The current text of each key (several values joined by ``; ``), None where the file has none."""
    found: dict[str, Optional[str]] = {}
    for key in keys:
        value = audio.tags.get(key) if audio.tags is not None else None
        values = list(getattr(value, "text", value) or [])  # an ID3 frame holds its values in ``text``
        found[key] = "; ".join(_text(v) for v in values) if values else None
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # an MP4 freeform atom's payload
        return value.decode("utf-8", "replace")
    return str(getattr(value, "value", value))  # an ASF attribute holds its value


def set_fields(audio: mutagen.FileType, kind: str, fields: dict[str, str]) -> None:
    """Put ``fields`` into the file's tags (in memory; :func:`save` writes them), replacing what they held."""
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    from mutagen import id3, mp4
    for key, text in fields.items():
        if kind == ID3:  # a TXXX frame's key is ``TXXX:<desc>``, a standard frame's its class name
            desc = {"desc": key[5:]} if key.startswith("TXXX:") else {}
            tags.setall(key, [getattr(id3, key[:4])(encoding=3, text=[text], **desc)])
        elif kind == MP4 and key.startswith("----:"):
            tags[key] = [mp4.MP4FreeForm(text.encode("utf-8"), mp4.AtomDataType.UTF8)]
        else:
            tags[key] = [text]
            if kind == MP4 and key == STANDARD_GENRE[MP4]:
                tags.pop("gnre", None)  # else some players still show the numeric genre atom


def save(audio: mutagen.FileType, kind: str) -> None:
    """Write the tags back; ID3 keeps the file's own ID3v2 version (v2.3 for a file that had none)."""
    if kind == ID3:
        # mutagen reports v2.4 for a tag it read from ID3v1 or made itself: only a v2 header read from the file
        # (mutagen's ``_header``) says which version the file has.
        minor = audio.tags.version[1] if getattr(audio.tags, "_header", None) is not None else None
        audio.save(v2_version=minor if minor in (3, 4) else NEW_ID3_VERSION)
    else:
        audio.save()
