"""Where a track's genre comes from (``--labels``): its genre folder, its own genre tag, or a manifest.

Tag and manifest names are normalised (:func:`normalise`: first value, ID3v1 numbers named, case and
punctuation compared away) and ``--genre-map`` merges synonyms, so ``Hip-Hop`` matches ``hiphop``.
No TensorFlow: preflight applies the same rules.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import re
from typing import Iterable, Optional, Sequence

from audio import filecheck
from config.errors import UserError
from config.settings import LABEL_SOURCES, LabelsConfig

FOLDERS, TAGS, MANIFEST = LABEL_SOURCES
MANIFEST_EXTENSIONS = (".csv", ".parquet")
MANIFEST_COLUMNS = ("path", "genre")
MANIFEST_OPTIONAL = ("artist", "album")

# Exclusion reasons (a record each, never decoded).
NO_GENRE_TAG = "no_genre_tag"
GENRE_NOT_CHOSEN = "genre_not_chosen"
RARE_GENRE = "rare_genre"
NOT_IN_MANIFEST = "not_in_manifest"
MANIFEST_FILE_MISSING = "manifest_file_missing"
REASONS = (NO_GENRE_TAG, GENRE_NOT_CHOSEN, RARE_GENRE, NOT_IN_MANIFEST, MANIFEST_FILE_MISSING)

_SEPARATORS = re.compile(r"\s*[;/|\\,\x00]\s*")
_NUMBERED = re.compile(r"^\((\d+)\)|^(\d+)$")


class ManifestError(UserError):
    """A manifest or genre map that cannot be read: the file, the line and the fix."""


@dataclasses.dataclass(frozen=True)
class Tags:
    """What labelling and grouping read of one file (None: not there)."""

    genre: Optional[str] = None
    artist: Optional[str] = None  # the album artist, else the artist
    album: Optional[str] = None


def source_of(labels: str) -> str:
    """``--labels`` -> labels.source: folders, tags, or manifest for a .csv or .parquet file."""
    if labels in (FOLDERS, TAGS):
        return labels
    if labels.lower().endswith(MANIFEST_EXTENSIONS):
        return MANIFEST
    raise ValueError(f"{labels!r}: give folders, tags, or a manifest file ending in .csv or .parquet")


def _id3v1_name(number: int) -> Optional[str]:
    from mutagen.id3 import TCON
    return TCON.GENRES[number] if 0 <= number < len(TCON.GENRES) else None


def first_value(raw: str) -> str:
    """The first of several values, an ID3v1 number as its name: ``(17)`` -> Rock."""
    text = raw.strip()
    numbered = _NUMBERED.match(text)
    if numbered:
        name = _id3v1_name(int(numbered.group(1) or numbered.group(2)))
        rest = text[numbered.end():].strip()
        text = rest or name or ""
    return next((part for part in _SEPARATORS.split(text) if part.strip()), "").strip()


def canonical(name: str) -> str:
    """Case, punctuation, hyphens, spaces and ``&``/``and`` compared away: ``Rock & Roll`` -> ``rockandroll``."""
    return re.sub(r"[\W_]+", "", name.casefold().replace("&", " and "))


def normalise(raw: str) -> str:
    """A tag's or a manifest's genre as a comparable name ("" when there is none)."""
    return canonical(first_value(raw))


class Names:
    """Normalised name -> the label set's own spelling of it, with ``genre_map``'s synonyms merged."""

    def __init__(self, genres: Sequence[str], genre_map: Iterable[tuple[str, str]] = ()):
        self._synonyms = {canonical(s): canonical(g) for s, g in genre_map}
        self._spelling = {canonical(g): g for g in genres}

    def __call__(self, raw: Optional[str]) -> str:
        """The genre ``raw`` names: the label set's spelling, else its normalised form, else "" (blank)."""
        name = normalise(raw or "")
        name = self._synonyms.get(name, name)
        return self._spelling.get(name, name)


def _values(tags, *keys: str) -> Optional[str]:
    for key in keys:
        try:
            found = tags.get(key) if hasattr(tags, "get") else None
        except (KeyError, ValueError):
            continue
        if found is None:
            continue
        for value in found if isinstance(found, list) else [found]:
            text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()
            if text:
                return text
    return None


def _from_tags(tags) -> Tags:
    if hasattr(tags, "getall"):  # ID3 (MP3, WAV, AIFF): v1's numbered genres come back as names
        genres = [g for frame in tags.getall("TCON") for g in frame.genres if g.strip()]
        text = {key: next((str(t) for f in tags.getall(key) for t in f.text if str(t).strip()), None)
                for key in ("TPE2", "TPE1", "TALB")}
        return Tags(genres[0] if genres else None, text["TPE2"] or text["TPE1"], text["TALB"])
    genre = _values(tags, "genre", "GENRE", "\xa9gen", "WM/Genre")
    if genre is None:
        number = _values(tags, "gnre")  # MP4's ID3v1 number, counted from 1
        if number is not None and number.strip("()[] ").isdigit():
            genre = _id3v1_name(int(number.strip("()[] ")) - 1)
    return Tags(genre,
                _values(tags, "albumartist", "ALBUMARTIST", "aART", "WM/AlbumArtist", "artist", "ARTIST", "\xa9ART",
                        "Author"),
                _values(tags, "album", "ALBUM", "\xa9alb", "WM/AlbumTitle"))


def read_tags(path: str) -> Optional[Tags]:
    """The genre, artist and album tags of ``path`` (headers only), or None when mutagen reads none."""
    import mutagen
    try:
        if os.path.exists(path):
            audio = mutagen.File(path)
        else:  # a remote file system: Beam's FileSystems opens it seekable
            from apache_beam.io.filesystems import FileSystems
            with FileSystems.open(path) as f:
                audio = mutagen.File(f)
        return None if audio is None or audio.tags is None else _from_tags(audio.tags)
    except Exception:  # noqa: BLE001 - a file mutagen cannot parse, or a malformed tag frame: no tags (it may decode)
        return None


def read_tags_of(paths: Sequence[str], workers: Optional[int] = None) -> list[Optional[Tags]]:
    """:func:`read_tags` of each path, read in threads (mutagen waits on file reads)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, workers or os.cpu_count() or 1)) as pool:
        return list(pool.map(read_tags, paths))


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    path: str               # relative to the root, '/'-separated
    genre: str              # as written
    artist: Optional[str]
    album: Optional[str]
    line: int               # the row's line (CSV) or row number (Parquet), counting the header as 1


def _read_bytes(path: str) -> bytes:
    if filecheck.is_local(path):
        with open(path, "rb") as f:
            return f.read()
    from tfx.dsl.io import fileio  # a remote file system only: keeps TensorFlow out of preflight
    if not fileio.exists(path):
        raise FileNotFoundError(path)
    with fileio.open(path, "rb") as f:
        return f.read()


def _rows(path: str) -> tuple[list[str], Iterable[tuple[int, list[str]]]]:
    data = _read_bytes(path)
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq
        table = pq.read_table(io.BytesIO(data))
        names = table.column_names
        columns = [table.column(n).to_pylist() for n in names]
        return names, ((i + 2, ["" if c[i] is None else str(c[i]) for c in columns]) for i in range(table.num_rows))
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    return [h.strip() for h in next(reader, [])], ((reader.line_num, row) for row in reader)


def read_manifest(path: str) -> dict[str, ManifestRow]:
    """Relative path -> row of the manifest at ``path``; ManifestError names the file, the line and the fix."""
    fix_columns = ("give the manifest a header row with the columns path and genre (and optionally artist, album), "
                   "one row per audio file, path relative to the data root")
    try:
        names, rows = _rows(path)
    except FileNotFoundError as error:
        raise ManifestError(f"The manifest {path} does not exist.", where="--labels",
                            fix="pass an existing .csv or .parquet file, or --labels folders or tags") from error
    except Exception as error:  # noqa: BLE001 - a file pyarrow or csv cannot read
        raise ManifestError(f"The manifest {path} cannot be read: {type(error).__name__}: {error}.",
                            where="--labels", fix=fix_columns) from error
    lowered = [n.strip().lower() for n in names]
    missing = [c for c in MANIFEST_COLUMNS if c not in lowered]
    if missing:
        raise ManifestError(f"The manifest has no column {' or '.join(missing)} (its columns: "
                            f"{', '.join(names) or 'none'}).", where=f"{path}, line 1", fix=fix_columns)
    at = {c: lowered.index(c) for c in (*MANIFEST_COLUMNS, *MANIFEST_OPTIONAL) if c in lowered}
    found: dict[str, ManifestRow] = {}
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(names):
            raise ManifestError(f"The manifest's row has {len(row)} value(s) where the header names {len(names)}.",
                                where=f"{path}, line {line}",
                                fix=f"give every row {len(names)} comma-separated values (quote a value that holds "
                                    "a comma)")
        cells = {c: row[i].strip() for c, i in at.items()}
        rel = re.sub(r"^(\./)+", "", cells["path"].replace("\\", "/"))
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise ManifestError(f"The manifest's path {cells['path']!r} is not a path inside the data root.",
                                where=f"{path}, line {line}",
                                fix="write each path relative to the data root, like Artist/Album/01 Title.flac")
        if rel in found:
            raise ManifestError(f"The manifest lists {rel} twice (lines {found[rel].line} and {line}).",
                                where=path, fix="keep one row per file")
        found[rel] = ManifestRow(rel, cells["genre"], cells.get("artist") or None, cells.get("album") or None, line)
    return found


def read_genre_map(path: str) -> tuple[tuple[str, str], ...]:
    """(synonym, genre) rows of a two-column CSV (a header ``synonym,genre`` is optional)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except OSError as error:
        raise ManifestError(f"The genre map {path} cannot be read: {error.strerror or error}.", where="--genre-map",
                            fix="pass a CSV file of rows synonym,genre") from error
    pairs = []
    for line, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (line == 1 and [c.lower() for c in cells[:2]] == ["synonym", "genre"]):
            continue
        if len(cells) != 2 or not all(cells):
            raise ManifestError(f"The genre map's row {row!r} is not two names.", where=f"{path}, line {line}",
                                fix="write one synonym and its genre per row, like: hip hop/rap,hiphop")
        pairs.append((cells[0], cells[1]))
    return tuple(pairs)


def file_sha256(path: str) -> str:
    """The manifest's content hash (a manifest is read whole anyway: about 10 MB for 10^5 rows)."""
    return hashlib.sha256(_read_bytes(path)).hexdigest()


@dataclasses.dataclass(frozen=True)
class Label:
    """One file's label: ``genre`` ("" when none) and its artist and album for grouping; else why not."""

    genre: str = ""
    tags: Optional[Tags] = None
    reason: str = ""
    detail: str = ""


def label_files(rel_paths: Sequence[tuple[str, str]], labels: LabelsConfig, genres: Sequence[str],
                root: str = "", workers: Optional[int] = None) -> tuple[dict[str, Label], list[ManifestRow]]:
    """Each ``(path, rel_path)``'s Label from tags or the manifest, and the manifest rows with no such file."""
    names = Names(genres, labels.genre_map)
    result: dict[str, Label] = {}
    if labels.source == TAGS:
        for (_, rel), tags in zip(rel_paths, read_tags_of([path for path, _ in rel_paths], workers)):
            genre = names(tags.genre if tags else None)
            result[rel] = Label(genre, tags) if genre else Label(
                reason=NO_GENRE_TAG, detail="no genre tag" if tags is not None else "no tags mutagen can read")
        return result, []
    if labels.source != MANIFEST:
        raise ValueError(f"label_files reads tags or a manifest, not labels.source {labels.source!r}")
    rows = read_manifest(labels.manifest or "")
    for _, rel in rel_paths:
        row = rows.get(rel)
        if row is None:
            result[rel] = Label(reason=NOT_IN_MANIFEST, detail=f"not listed in the manifest {labels.manifest}")
            continue
        genre = names(row.genre)
        result[rel] = (Label(genre, Tags(row.genre, row.artist, row.album)) if genre else
                       Label(reason=NO_GENRE_TAG, detail=f"the manifest's line {row.line} names no genre"))
    return result, [row for rel, row in sorted(rows.items()) if rel not in result]
