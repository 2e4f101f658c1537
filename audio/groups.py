"""Which tracks belong together in one split: the grouping rule of ingestion and preflight.

An album repeats its sound on every track, so one track in train and another in test flatters the held-out
figure: ``split.group_by`` names the unit (album, artist, their tag forms, or track) the hash and quota
protocols keep together. Keys omit the genre, so an artist under two genres is one group. No TensorFlow.
"""
from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from typing import Iterable, NamedTuple, Optional, Sequence

from audio import labels
from config.errors import UserError
from config.settings import GROUPINGS, HASH_PROTOCOLS, SplitConfig

ALBUM, ARTIST, TAG_ALBUM, TAG_ARTIST, TRACK = GROUPINGS
MIN_GROUPS_PER_GENRE = 2  # one in train, one held out
# A folder that holds one disc of a multi-disc album: "CD1", "cd 2", "Disc 3", "Disk-4".
DISC_FOLDER = re.compile(r"(cd|dis[ck])[ _-]?\d+", re.IGNORECASE)


class TooFewGroups(UserError):
    """A genre has too few groups for a hash or quota protocol to put it in train and hold some out."""


def validate(group_by: str) -> None:
    if group_by not in GROUPINGS:
        raise ValueError(f"Unknown split.group_by {group_by!r}; choose one of {', '.join(GROUPINGS)}.")


def folder_key(path: str, group_by: str) -> str:
    """The group of a track's layout path by the folder rules (``tag-*`` use their folder rule)."""
    folder, slash, _ = path.rpartition("/")
    if not slash or group_by == TRACK:
        return path
    if group_by in (ARTIST, TAG_ARTIST):
        return folder.split("/", 1)[0]
    album, slash, last = folder.rpartition("/")
    return album if slash and DISC_FOLDER.fullmatch(last) else folder


def layout_path(track_id: str, genre_folders: bool) -> str:
    """What the folder rules read of a track id: without its genre folder when labels come from folders."""
    return track_id.partition("/")[2] or track_id if genre_folders else track_id


def tags_key(tags: Optional[labels.Tags], group_by: str) -> Optional[str]:
    """The group of a file with these artist and album tags (compared case-blind), or None (no such tag)."""
    if tags is None:
        return None
    artist = (tags.artist or "").strip().casefold() or None
    if group_by in (ARTIST, TAG_ARTIST):
        return artist
    album = (tags.album or "").strip().casefold() or None
    if album is None:
        return None
    return f"{artist}/{album}" if artist else album


class Member(NamedTuple):
    """What grouping reads of a track; ``tags`` (from its label) group it under every rule but ``track``."""

    path: str
    track_id: str
    layout_path: Optional[str] = None
    tags: Optional[labels.Tags] = None


@dataclasses.dataclass
class Grouping:
    """track_id -> group key, and how many tag groupings fell back to the folder rule."""

    group_by: str
    keys: dict[str, str]
    fallbacks: int = 0


def group_keys(files: Sequence, group_by: str, workers: Optional[int] = None) -> Grouping:
    """The group of each file (discovery.AudioFile, or ``(path, track_id)``); tags are read in threads, and a
    file without the tags its rule needs falls back to the folder rule, counted."""
    validate(group_by)
    members = [Member(*f) if isinstance(f, tuple) else Member(f.path, f.track_id, f.layout_path or f.track_id, f.tags)
               for f in files]
    if group_by == TRACK:
        return Grouping(group_by, {m.track_id: m.track_id for m in members})
    reading = [m for m in members if m.tags is None and group_by in (TAG_ALBUM, TAG_ARTIST)]
    read: dict[str, Optional[labels.Tags]] = {}
    if reading:
        read = dict(zip((m.track_id for m in reading), labels.read_tags_of([m.path for m in reading], workers)))
    keys, fallbacks = {}, 0
    for m in members:
        by_tags = m.tags is not None or m.track_id in read
        key = tags_key(m.tags if m.tags is not None else read.get(m.track_id), group_by) if by_tags else None
        if key is None:
            fallbacks += by_tags or group_by in (TAG_ALBUM, TAG_ARTIST)
            key = folder_key(m.layout_path or m.track_id, group_by)
        keys[m.track_id] = key
    return Grouping(group_by, keys, fallbacks)


def check_splittable(tracks: Iterable[tuple[str, str]], split: SplitConfig, where: str) -> None:
    """TooFewGroups when a genre cannot be both in train and held out (hash and quota protocols only)."""
    if split.protocol not in HASH_PROTOCOLS or sum(r > 0 for r in split.ratios) < 2:
        return
    groups_of: dict[str, set[str]] = defaultdict(set)
    for genre, key in tracks:
        groups_of[genre].add(key)
    short = sorted((g, len(keys)) for g, keys in groups_of.items() if len(keys) < MIN_GROUPS_PER_GENRE)
    if not short:
        return
    unit = {ALBUM: "album folder", ARTIST: "artist folder", TAG_ALBUM: "album", TAG_ARTIST: "artist",
            TRACK: "track"}[split.group_by]
    named = ", ".join(f"{g} ({n} {unit})" for g, n in short)  # n is 1: a genre present has a group
    raise TooFewGroups(
        f"Split protocol {split.protocol} with --group-by {split.group_by} keeps every {unit} in one split, so a "
        f"genre needs tracks in at least {MIN_GROUPS_PER_GENRE} {unit}s to be both in train and held out for "
        f"evaluation; " + (f"genre {short[0][0]} has {short[0][1]} {unit}." if len(short) == 1
                           else f"genres {named} fall short."),
        where=where,
        fix=f"run with `--group-by track` (tracks of one {unit} may then be on both sides of the split), add "
            f"tracks from other albums or artists to {', '.join(g for g, _ in short)}, or leave "
            f"{'that genre' if len(short) == 1 else 'those genres'} out with --genres.")
