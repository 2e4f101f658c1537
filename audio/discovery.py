"""Find the audio files of a collection: the one discovery rule of ingestion and the tagger.

:func:`classify` decides from the relative path alone whether an entry is a candidate, so ingestion and the
tagger see the same candidates with the same reasons. Ingestion adds its layout (:func:`discover`): genre
folders under the root or GTZAN's parent folder, or any depth with labels from tags or a manifest.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
from collections import Counter
from typing import Iterable, Optional, Sequence

from audio import filecheck, labels
from config.settings import AUDIO_EXTENSIONS, GENRE_PARENTS, LabelsConfig

# Reasons an entry is excluded (a record, never opened), shared with the tagger; then ingestion's layout reasons.
HIDDEN = "hidden"
NOT_AUDIO_EXTENSION = "not_audio_extension"
NO_NAME = "no_name"
LINKED_FOLDER = "linked_folder"
NO_GENRE_FOLDER = "no_genre_folder"
OUTSIDE_GENRE_PARENT = "outside_genre_parent"
_DETAILS = {
    HIDDEN: "a hidden file or folder (a name starting with '.'): not read",
    NOT_AUDIO_EXTENSION: f"not an audio file (extensions read: {', '.join(AUDIO_EXTENSIONS)})",
    NO_NAME: "an audio extension without a name",
    LINKED_FOLDER: "a symbolic link to a folder: not followed",
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One thing the walk met. ``excluded`` set: not a candidate; else ``problem`` may be set."""

    path: str       # absolute path or URI
    rel_path: str   # relative to the walked folder, '/'-separated
    excluded: Optional[filecheck.Problem] = None
    problem: Optional[filecheck.Problem] = None


def classify(rel_path: str, linked_folder: bool = False) -> Optional[filecheck.Problem]:
    """Why the entry at ``rel_path`` is not a candidate, or None: the shared rule."""
    parts = rel_path.split("/")
    stem, dot, ext = parts[-1].rpartition(".")
    if any(p.startswith(".") for p in parts):
        reason = HIDDEN
    elif not dot or ext.lower() not in AUDIO_EXTENSIONS:
        reason = LINKED_FOLDER if linked_folder else NOT_AUDIO_EXTENSION
    elif not stem.strip():
        reason = NO_NAME
    else:
        return None
    return filecheck.Problem(reason, _DETAILS[reason])


def entry(path: str, rel: str, linked_folder: bool = False) -> Entry:
    """The entry at ``path``: excluded by :func:`classify`, or a candidate with its filecheck problem."""
    excluded = classify(rel, linked_folder)
    if excluded is None and not filecheck.is_local(path):
        from tfx.dsl.io import fileio  # remote file systems only: keeps TensorFlow out of local runs
        folder = filecheck.Problem(filecheck.IS_DIRECTORY, filecheck.DIRECTORY_DETAIL)
        return Entry(path, rel, problem=folder if fileio.isdir(path) else None)
    return Entry(path, rel, excluded=excluded, problem=None if excluded else filecheck.check(path))


def walk(root: str) -> list[Entry]:
    """Every entry under ``root``, sorted by relative path; links to folders are not descended."""
    root = root.rstrip("/") or "/"
    entries: list[Entry] = []
    if not filecheck.is_local(root):
        from tfx.dsl.io import fileio
        for folder, _, names in fileio.walk(root):
            for name in names:
                path = posixpath.join(folder.rstrip("/"), name)
                entries.append(entry(path, path[len(root) + 1:]))
        return sorted(entries, key=lambda e: e.rel_path)

    def unlisted(error: OSError) -> None:
        if not error.filename or os.path.abspath(error.filename) == os.path.abspath(root):
            return  # the root itself: discover() and list_audio() check it first
        rel = os.path.relpath(error.filename, root).replace(os.sep, "/")
        hidden = classify(rel + "/x.wav")
        entries.append(Entry(error.filename, rel, excluded=hidden, problem=None if hidden else filecheck.Problem(
            filecheck.UNREADABLE, f"a folder that cannot be listed: {error.strerror or error}")))

    for folder, dirs, names in os.walk(root, onerror=unlisted, followlinks=False):
        for name in dirs:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if os.path.islink(path):
                entries.append(entry(path, rel, linked_folder=True))
            elif classify(rel) is None:  # a folder named like audio: its own record, then its contents
                entries.append(Entry(path, rel, problem=filecheck.Problem(filecheck.IS_DIRECTORY,
                                                                          filecheck.DIRECTORY_DETAIL)))
        for name in names:
            path = os.path.join(folder, name)
            entries.append(entry(path, os.path.relpath(path, root).replace(os.sep, "/")))
    return sorted(entries, key=lambda e: e.rel_path)


@dataclasses.dataclass(frozen=True)
class AudioFile:
    """One candidate file. ``track_id`` (:func:`track_id`) names the track; splits.py keeps its group together."""

    path: str       # absolute path or URI
    rel_path: str   # relative to the data root, '/'-separated
    genre: str      # folders: the first folder under the base (may be unknown: checked later); else its label
    track_id: str   # the path under the base (genre folder included) without the extension
    problem: Optional[filecheck.Problem] = None  # set when the entry is not a readable file
    layout_path: str = ""  # what the folder groupings read: the track's path under its genre folder, or under the root
    tags: Optional[labels.Tags] = None  # artist and album from the tags or the manifest that labelled the file
    listed_as: str = ""  # how the split lists name it, when not by its track id

    @property
    def list_key(self) -> str:
        """How the fault-filtered list files name a track: ``genre/stem``, extension ignored."""
        return self.listed_as or self.track_id


@dataclasses.dataclass(frozen=True)
class Excluded:
    rel_path: str
    reason: str
    detail: str


@dataclasses.dataclass(frozen=True)
class Discovery:
    files: list[AudioFile]      # candidates under a genre folder (or labelled), known or unknown genre
    excluded: list[Excluded]    # every other entry of the root, with its reason
    source: str = labels.FOLDERS  # where the genres come from (labels.source)

    @property
    def other_files(self) -> list[str]:
        """Files without an audio extension (summary.json ``ignored_non_audio_files``)."""
        return [e.rel_path for e in self.excluded if e.reason == NOT_AUDIO_EXTENSION]


def genre_parent(root: str) -> str:
    """``genres_original`` or ``genres`` when ``root`` holds that GTZAN folder, else ``""``."""
    from tfx.dsl.io import fileio
    try:
        return next((parent for parent in GENRE_PARENTS if fileio.isdir(os.path.join(root, parent))), "")
    except Exception:  # noqa: BLE001 - an unreachable root is reported by the executor instead
        return ""


def input_pattern(root: str) -> str:
    """The ExampleGen split pattern for ``root``'s layout (the base folder only: discovery walks it all);
    ``*/*`` when ``root`` cannot be read here (a bucket only the cluster reaches)."""
    parent = genre_parent(root)
    return f"{parent}/*/*" if parent else "*/*"


def track_id(rel: str) -> str:
    """A track's identity: its path under the base, genre folder included, without the extension."""
    folder, slash, name = rel.rpartition("/")
    return folder + slash + name.rpartition(".")[0]


def sort_entries(entries: Iterable[Entry], parent: str = "", source: str = labels.FOLDERS) -> Discovery:
    """The layout rule: :func:`walk`'s entries -> candidates and exclusions (no TensorFlow: preflight uses it).
    With tags or a manifest every candidate is kept with no genre yet (:func:`label` gives it one)."""
    files: list[AudioFile] = []
    excluded: list[Excluded] = []
    by_folder = source == labels.FOLDERS
    for entry in entries:
        rel = entry.rel_path
        if entry.excluded is not None:
            excluded.append(Excluded(rel, entry.excluded.reason, entry.excluded.detail))
            continue
        genre, inner, under_genre = "", rel, rel  # labelled later: the whole path is the track
        if by_folder:
            if parent and not rel.startswith(parent + "/"):
                excluded.append(Excluded(rel, OUTSIDE_GENRE_PARENT,
                                         f"outside the {parent}/ folder that holds the genres"))
                continue
            inner = rel[len(parent) + 1:] if parent else rel
            if "/" not in inner:
                excluded.append(Excluded(rel, NO_GENRE_FOLDER, "not inside a genre folder: its genre is unknown"))
                continue
            genre, _, under_genre = inner.partition("/")
        files.append(AudioFile(path=entry.path, rel_path=rel, genre=genre, track_id=track_id(inner),
                               problem=entry.problem, layout_path=track_id(under_genre)))
    return Discovery(files=files, excluded=excluded, source=source)


def label(found: Discovery, config: LabelsConfig, genres: Sequence[str], root: str = "") -> Discovery:
    """``found`` with each file's genre from ``config.source``; readable files without a genre, manifest rows
    without a file and genres below the minimum are excluded."""
    files, excluded = list(found.files), list(found.excluded)
    if found.source != labels.FOLDERS:
        readable = [(f.path, f.rel_path) for f in files if f.problem is None]
        labelled, missing = labels.label_files(readable, config, genres, root)
        files = []
        for f in found.files:
            lab = labelled.get(f.rel_path)
            if lab is None:
                files.append(f)
            elif lab.genre:
                stem = f.track_id.rpartition("/")[2]
                files.append(dataclasses.replace(f, genre=lab.genre, tags=lab.tags, listed_as=f"{lab.genre}/{stem}"))
            else:
                excluded.append(Excluded(f.rel_path, lab.reason, lab.detail))
        excluded += [Excluded(row.path, labels.MANIFEST_FILE_MISSING,
                              f"listed on line {row.line} of the manifest {config.manifest}, not found under the root")
                     for row in missing]
    counts = Counter(f.genre for f in files if f.problem is None and f.genre)
    rare = {g: n for g, n in counts.items() if n < config.min_tracks_per_genre}
    kept = []
    for f in files:
        if f.problem is None and f.genre in rare:
            excluded.append(Excluded(f.rel_path, labels.RARE_GENRE, f"genre {f.genre} has {rare[f.genre]} track(s), "
                                     f"fewer than --min-tracks-per-genre {config.min_tracks_per_genre}"))
        else:
            kept.append(f)
    return Discovery(files=kept, excluded=sorted(excluded, key=lambda e: e.rel_path), source=found.source)


def discover(root: str, pattern: str, genres: Sequence[str] = (), config: Optional[LabelsConfig] = None) -> Discovery:
    """Walk, sort and label ``root``; ``pattern`` (:func:`input_pattern`) names the base folder. Never raises on
    one entry; an unreadable manifest raises labels.ManifestError."""
    config = config or LabelsConfig()
    from tfx.dsl.io import fileio
    if not fileio.exists(root):
        among = f", with genres among {', '.join(genres)}" if genres else ""
        raise FileNotFoundError(
            f"Audio root {root} does not exist. Pass a folder laid out as <root>/<genre>/<name>.wav "
            f"(or GTZAN's <root>/genres_original/<genre>/...){among}.")
    found = sort_entries(walk(root), pattern.split("*", 1)[0].strip("/"), config.source)
    if not found.files:
        raise FileNotFoundError(
            f"No audio files under {root} in genre folders with an extension among "
            f"{', '.join(AUDIO_EXTENSIONS)}. Expected <root>/<genre>/<name>.wav (or GTZAN's "
            f"genres_original/ or genres/ folder inside the root).")
    return label(found, config, genres, root)
