"""Find the audio files of a GTZAN-style collection.

Accepted layouts (``root`` is the component's ``input_base``)::

    <root>/<genre>/<name>.<ext>                   the project's layout (synthetic data)
    <root>/genres_original/<genre>/<name>.<ext>   GTZAN as distributed on Kaggle
    <root>/genres/<genre>/<name>.<ext>            GTZAN as distributed by marsyas.info

The layout is turned into an ExampleGen input pattern (``*/*`` or ``genres_original/*/*``)
once, when the component is built, so TFX's driver fingerprints exactly the files the
executor reads and a changed file re-runs ingestion instead of hitting the cache.
Works on any filesystem tfx.dsl.io.fileio knows (local, gs://, ...).

Entries named like audio that are not readable files (broken or looping links, folders,
FIFOs, unreadable files: filecheck.py) are listed with the reason, never opened, so the
plan quarantines them; the component's driver (driver.py) fingerprints them without
following them.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
from typing import Optional, Sequence

from tfx.dsl.io import fileio

from components.audio_example_gen import filecheck
from pipeline.config import AUDIO_EXTENSIONS, GENRE_PARENTS


@dataclasses.dataclass(frozen=True)
class AudioFile:
    """One candidate file. ``track_id`` (the file stem) is the unit of every split."""

    path: str       # as globbed: absolute path or URI
    rel_path: str   # relative to the data root, '/'-separated
    genre: str      # name of the parent folder (may be unknown: checked later)
    track_id: str
    problem: Optional[filecheck.Problem] = None  # set when the entry is not a readable file

    @property
    def list_key(self) -> str:
        """How the fault-filtered list files name a track: ``genre/stem`` (extension ignored)."""
        return f"{self.genre}/{self.track_id}"


@dataclasses.dataclass(frozen=True)
class Discovery:
    files: list[AudioFile]          # audio extensions, known or unknown genre folder
    other_files: list[str]          # not an audio extension: not ingested, counted in the summary


def input_pattern(root: str) -> str:
    """The ExampleGen split pattern for the layout found under ``root``.

    Falls back to ``*/*`` when ``root`` cannot be read here (for example a bucket that
    only the cluster can reach when a Kubeflow pipeline is compiled).
    """
    try:
        for parent in GENRE_PARENTS:
            if fileio.isdir(os.path.join(root, parent)):
                return f"{parent}/*/*"
    except Exception:  # noqa: BLE001 - an unreachable root is reported by the executor instead
        pass
    return "*/*"


def _relative(path: str, root: str) -> str:
    root = root.rstrip("/")
    rel = path[len(root) + 1:] if path.startswith(root + "/") else os.path.relpath(path, root)
    return rel.replace(os.sep, "/")


def _problem(path: str) -> Optional[filecheck.Problem]:
    if filecheck.is_local(path):
        return filecheck.check(path)
    return filecheck.Problem(filecheck.IS_DIRECTORY, filecheck.DIRECTORY_DETAIL) if fileio.isdir(path) else None


def discover(root: str, pattern: str, genres: Sequence[str] = ()) -> Discovery:
    """List ``root/pattern`` and sort the files into audio candidates and others.

    Never raises on one entry: an audio-named entry that is not a readable file carries
    its ``problem``; folders with other names are skipped. ``genres`` only words the
    message for a missing root.
    """
    if not fileio.exists(root):
        among = f", with genres among {', '.join(genres)}" if genres else ""
        raise FileNotFoundError(
            f"Audio root {root} does not exist. Pass a folder laid out as <root>/<genre>/<name>.wav "
            f"(or GTZAN's <root>/genres_original/<genre>/...){among}.")
    files: list[AudioFile] = []
    others: list[str] = []
    for path in sorted(fileio.glob(os.path.join(root, pattern))):
        rel = _relative(path, root)
        name = posixpath.basename(rel)
        stem, dot, ext = name.rpartition(".")
        if not dot or ext.lower() not in AUDIO_EXTENSIONS:
            if not (os.path.isdir(path) if filecheck.is_local(path) else fileio.isdir(path)):
                others.append(rel)
            continue
        genre = posixpath.basename(posixpath.dirname(rel))
        files.append(AudioFile(path=path, rel_path=rel, genre=genre, track_id=stem, problem=_problem(path)))
    if not files:
        raise FileNotFoundError(
            f"No audio files under {root} match {pattern!r} with an extension among "
            f"{', '.join(AUDIO_EXTENSIONS)}. Expected <root>/<genre>/<name>.wav (or GTZAN's "
            f"genres_original/ or genres/ folder inside the root).")
    return Discovery(files=files, other_files=others)
