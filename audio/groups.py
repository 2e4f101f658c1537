"""Which tracks belong together in one split: the grouping rule of ingestion and preflight.

An album repeats its sound on every track, so one track in train and another in test flatters the held-out
figure: ``split.group_by`` names the unit (album, artist, their tag forms, or track) the hash and quota
protocols keep together. Keys omit the genre, so an artist under two genres is one group; a placeholder name
(Unknown Album, Various Artists as an artist) ties nothing, as two rips that share it are not one album. No
TensorFlow.
"""
from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple, Optional, Sequence

from audio import labels
from config.errors import UserError
from config.settings import GROUPINGS

ALBUM, ARTIST, TAG_ALBUM, TAG_ARTIST, TRACK = GROUPINGS
UNIT = {ALBUM: "album folder", ARTIST: "artist folder", TAG_ALBUM: "album", TAG_ARTIST: "artist", TRACK: "track"}
# A folder that holds one disc of a multi-disc album: "CD1", "cd 2", "Disc 3", "Disk-4".
DISC_FOLDER = re.compile(r"(cd|dis[ck])[ _-]?\d+", re.IGNORECASE)
# Artist names of a compilation: under --group-by artist its album groups it instead.
VARIOUS = frozenset({"various artists", "various", "va", "v a"})
# What rippers and taggers (iTunes, Windows Media Player, EAC, beets, MusicBrainz Picard) name an artist or album
# they do not know, as _canonical spells them; the empty name is one too.
PLACEHOLDERS = VARIOUS | {"unknown", "unknown artist", "unknown album", "unknown disc", "unknown title", "untitled",
                          "untitled album", "artist unknown", "album unknown", "no artist", "no album", "non album",
                          "non album tracks"}
ALONE = ""  # the key folder_key and tags_key give a placeholder name: the track is a group of its own
_TRAILING_BRACKETS = re.compile(r"(?<=\S)(\s*(\([^()]*\)|\[[^\[\]]*\]))+\s*$")  # (11/29/2026 3:37:20 AM), [2019]
_WORD = re.compile(r"[^\W_]+")
_TRAILING_NUMBERS = re.compile(r"( \d+)+$")  # Unknown Album 2


class TooFewGroups(UserError):
    """A genre has too few tracks or groups for the hash or quota protocol to put it in the splits it promises."""


def _canonical(name: str) -> str:
    """Case, a trailing bracketed part, punctuation and trailing numbers compared away: "[unknown]" is "unknown",
    Windows Media Player's "Unknown Album (11-29-2026 3-37-20 AM)" is "unknown album"."""
    words = " ".join(_WORD.findall(_TRAILING_BRACKETS.sub("", name.casefold())))
    return _TRAILING_NUMBERS.sub("", words)


def is_placeholder(name: str) -> bool:
    """Whether an artist or album name stands for none (PLACEHOLDERS), alone or as "Unknown Artist - Unknown
    Album"; a name of punctuation only, like Sigur Ros's "( )", is a name."""
    return not name.strip() or all(_canonical(part) in PLACEHOLDERS for part in name.split(" - "))


def validate(group_by: str) -> None:
    if group_by not in GROUPINGS:
        raise ValueError(f"Unknown split.group_by {group_by!r}; choose one of {', '.join(GROUPINGS)}.")


def folder_key(path: str, group_by: str) -> str:
    """The group of a track's layout path by the folder rules (``tag-*`` use their folder rule); ALONE when the
    folder that names the group is a placeholder (a compilation's artist folder: its album folder names it)."""
    folder, slash, _ = path.rpartition("/")
    if not slash or group_by == TRACK:
        return path
    artist = folder.split("/", 1)[0]
    if group_by in (ARTIST, TAG_ARTIST) and _canonical(artist) not in VARIOUS:
        return ALONE if is_placeholder(artist) else artist
    album, slash, last = folder.rpartition("/")
    album = album if slash and DISC_FOLDER.fullmatch(last) else folder
    return ALONE if is_placeholder(album.rpartition("/")[2]) else album


def layout_path(track_id: str, genre_folders: bool) -> str:
    """What the folder rules read of a track id: without its genre folder when labels come from folders."""
    return track_id.partition("/")[2] or track_id if genre_folders else track_id


def tags_key(tags: Optional[labels.Tags], group_by: str) -> Optional[str]:
    """The group of a file with these artist and album tags (compared case-blind), ALONE for a placeholder name
    (a compilation's artist: its album names the group), or None (no such tag, an empty one included)."""
    if tags is None:
        return None
    artist = (tags.artist or "").strip().casefold() or None
    if group_by in (ARTIST, TAG_ARTIST) and (artist is None or _canonical(artist) not in VARIOUS):
        return ALONE if artist and is_placeholder(artist) else artist
    album = (tags.album or "").strip().casefold() or None
    if album is None:
        return None
    return ALONE if is_placeholder(album) else f"{artist}/{album}" if artist else album


class Member(NamedTuple):
    """What grouping reads of a track; ``tags`` (from its label) group it under every rule but ``track``."""

    path: str
    track_id: str
    layout_path: Optional[str] = None
    tags: Optional[labels.Tags] = None


@dataclasses.dataclass
class Grouping:
    """track_id -> group key; the tracks a tag grouping grouped by folder (no such tag) and those alone for a
    placeholder name, by id, so a caller counts those it keeps."""

    group_by: str
    keys: dict[str, str]
    by_folder: set[str] = dataclasses.field(default_factory=set)
    alone: set[str] = dataclasses.field(default_factory=set)

    @property
    def fallbacks(self) -> int:
        return len(self.by_folder)


def group_keys(files: Sequence, group_by: str, workers: Optional[int] = None) -> Grouping:
    """The group of each file (discovery.AudioFile, or ``(path, track_id)``); tags are read in threads, a file
    without the tags its rule needs falls back to the folder rule, and one named by a placeholder is alone."""
    validate(group_by)
    members = [Member(*f) if isinstance(f, tuple) else Member(f.path, f.track_id, f.layout_path or f.track_id, f.tags)
               for f in files]
    if group_by == TRACK:
        return Grouping(group_by, {m.track_id: m.track_id for m in members})
    reading = [m for m in members if m.tags is None and group_by in (TAG_ALBUM, TAG_ARTIST)]
    read: dict[str, Optional[labels.Tags]] = {}
    if reading:
        read = dict(zip((m.track_id for m in reading), labels.read_tags_of([m.path for m in reading], workers)))
    grouping = Grouping(group_by, {})
    for m in members:
        by_tags = m.tags is not None or m.track_id in read
        key = tags_key(m.tags if m.tags is not None else read.get(m.track_id), group_by) if by_tags else None
        if key is None:
            if by_tags or group_by in (TAG_ALBUM, TAG_ARTIST):
                grouping.by_folder.add(m.track_id)
            key = folder_key(m.layout_path or m.track_id, group_by)
        if key == ALONE:
            grouping.alone.add(m.track_id)
        grouping.keys[m.track_id] = m.track_id if key == ALONE else key
    return grouping
