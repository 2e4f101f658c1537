"""Which tracks belong together in one split: the grouping rule of ingestion and preflight.

A music library repeats an album's sound (mastering, room, instruments) on every track and
an artist's voice on every album; a track of an album in train and another of it in test
flatters the held-out figure. ``split.group_by`` (``--group-by``) names the unit the hash
and quota protocols (splits.py) keep together:

- ``album`` (default): the track's folder under the genre (``rock/Artist/Album/01 x.flac``
  -> ``Artist/Album``); a disc folder (``CD1``, ``Disc 2``, ``disk3``) is part of the album
  above it (``Artist/Album/CD2/01 x.flac`` -> ``Artist/Album``);
- ``artist``: the first folder under the genre (-> ``Artist``);
- ``tag-album`` / ``tag-artist``: the file's own tags, read with mutagen (album artist, or
  artist, and album -> ``artist/album``; album artist, or artist -> ``artist``), compared
  case-blind; a file without the tag (or whose tags cannot be read) falls back to the
  folder rule, and the fallbacks are counted in summary.json;
- ``track``: no grouping (each track is its own group).

A file directly in the genre folder (GTZAN, the synthetic set) is its own group under the
folder rules, keyed by its track id, so such collections split exactly as by track. Keys do
not hold the genre: an artist filed under two genre folders is one group.

:func:`check_splittable` refuses a protocol that cannot be met (a genre with fewer than two
groups cannot be both in train and held out). Preflight and the executor both call it on
the same discovery and :func:`group_keys`. No TensorFlow here: preflight imports this module.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Optional, Sequence

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


def folder_key(track_id: str, group_by: str) -> str:
    """The group of ``track_id`` (its path under the genre folder, no extension) by the folder rules.

    ``tag-*`` groupings fall back to their folder rule (``tag-album`` -> ``album``).
    """
    folder, slash, _ = track_id.rpartition("/")
    if not slash or group_by == TRACK:
        return track_id
    if group_by in (ARTIST, TAG_ARTIST):
        return folder.split("/", 1)[0]
    album, slash, last = folder.rpartition("/")
    return album if slash and DISC_FOLDER.fullmatch(last) else folder


def _tag(tags, *names: str) -> Optional[str]:
    for name in names:
        values = [v.strip() for v in (tags.get(name) or []) if isinstance(v, str) and v.strip()]
        if values:
            return values[0].casefold()
    return None


def tag_key(path: str, group_by: str) -> Optional[str]:
    """The group of the file at ``path`` by its own tags, or None (no such tag, unreadable tags)."""
    import mutagen  # only the tag groupings need it

    try:
        if os.path.exists(path):
            audio = mutagen.File(path, easy=True)
        else:  # a remote file system: Beam's FileSystems opens it seekable
            from apache_beam.io.filesystems import FileSystems

            with FileSystems.open(path) as f:
                audio = mutagen.File(f, easy=True)
    except Exception:  # noqa: BLE001 - a file mutagen cannot parse has no tags; it may still decode
        return None
    if audio is None or audio.tags is None:
        return None
    artist = _tag(audio.tags, "albumartist", "artist")
    if group_by == TAG_ARTIST:
        return artist
    album = _tag(audio.tags, "album")
    if album is None:
        return None
    return f"{artist}/{album}" if artist else album


@dataclasses.dataclass
class Grouping:
    """track_id -> group key, and how many tag groupings fell back to the folder rule."""

    group_by: str
    keys: dict[str, str]
    fallbacks: int = 0


def group_keys(files: Sequence[tuple[str, str]], group_by: str, workers: Optional[int] = None) -> Grouping:
    """The group of each ``(path, track_id)``; tags are read in threads (mutagen reads headers only)."""
    validate(group_by)
    if group_by not in (TAG_ALBUM, TAG_ARTIST):
        return Grouping(group_by, {track_id: folder_key(track_id, group_by) for _, track_id in files})
    with ThreadPoolExecutor(max(1, workers or os.cpu_count() or 1)) as pool:
        tagged = list(pool.map(lambda f: tag_key(f[0], group_by), files))
    keys, fallbacks = {}, 0
    for (_, track_id), key in zip(files, tagged):
        if key is None:
            fallbacks += 1
            key = folder_key(track_id, group_by)
        keys[track_id] = key
    return Grouping(group_by, keys, fallbacks)


def check_splittable(tracks: Iterable[tuple[str, str]], split: SplitConfig, where: str) -> None:
    """TooFewGroups when a genre of ``(genre, group key)`` pairs cannot be in train and held out.

    Only for the hash and quota protocols (the list protocols keep their lists) and ratios
    that hold something out.
    """
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
