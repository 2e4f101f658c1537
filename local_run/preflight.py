"""Checks that cost milliseconds and run before TensorFlow is imported.

A wrong ``--data-root``, genres that are not the label set or a split the library cannot fill fail in the first
second, not after an hour of training. The rules are ingestion's own (audio/discovery.py, groups.py, labels.py,
components/audio_example_gen/splits.py, none importing TensorFlow here), so a folder counts as a genre exactly when
ingestion reads audio from it, and a track lands in the split ingestion gives it. Checks that need the data decoded
run at the end of ingestion.
"""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from typing import Optional

from audio import groups, labels
from audio.discovery import AudioFile, Discovery, classify, label, sort_entries, walk
from components.audio_example_gen import splits
from config.errors import UserError
from config.settings import AUDIO_EXTENSIONS, GENRE_PARENTS, GENRES, HASH_PROTOCOLS, PipelineConfig

LIST_FILES: tuple[str, ...] = ("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt")


@dataclasses.dataclass(frozen=True)
class DataRootScan:
    root: str                       # the folder holding the genre folders
    audio_files: dict[str, int]     # genre folder -> number of files with an audio extension

    @property
    def genres(self) -> tuple[str, ...]:
        return tuple(sorted(g for g, n in self.audio_files.items() if n))


def _count_audio(folder: str) -> int:
    """Audio files ingestion would read under ``folder``, nested ones included (links to folders not followed)."""
    count = 0
    for parent, dirs, names in os.walk(folder):
        rel = os.path.relpath(parent, folder)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        count += sum(classify(name if rel == "." else f"{rel}/{name}") is None for name in names)
    return count


def scan_data_root(root: str) -> DataRootScan:
    """Count audio files per genre folder; UserError when the root is missing or not a folder."""
    if not os.path.isdir(root):
        what = "does not exist" if not os.path.lexists(root) else "is not a directory"
        raise UserError(f"The data root {root} {what}.", where="--data-root",
                        fix="point --data-root at a folder laid out as <root>/<genre>/<genre>.NNNNN.wav "
                            "(or GTZAN's genres_original/ folder), or leave it out to use the synthetic set")
    base = next((os.path.join(root, p) for p in GENRE_PARENTS if os.path.isdir(os.path.join(root, p))), root)
    with os.scandir(base) as entries:
        return DataRootScan(root=base, audio_files={e.name: _count_audio(e.path) for e in entries
                                                    if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")})


def resolve_genres(config: PipelineConfig, scan: DataRootScan, genres_from_data: bool) -> tuple[str, ...]:
    """The label set for this run, or UserError when the data cannot be labelled with it."""
    found = tuple(g for g in scan.genres if scan.audio_files[g] >= config.labels.min_tracks_per_genre)
    extensions = "/".join(AUDIO_EXTENSIONS)
    if len(found) < 2:
        fix = "add folders <root>/<genre>/ with audio files for at least two genres"
        name = os.path.basename(os.path.normpath(scan.root))
        if not found and name in config.genres and _count_audio(scan.root):
            fix = (f"{scan.root} looks like the '{name}' genre's own folder: point --data-root at the folder "
                   f"above it ({os.path.dirname(os.path.normpath(scan.root))})")
        raise UserError(
            f"The data root holds audio ({extensions}) in {len(found)} genre folder(s)"
            + (f" ({', '.join(found)})" if found else "") + "; a classifier needs at least two genres.",
            where=scan.root, fix=fix)
    if genres_from_data:
        return found
    expected = tuple(config.genres)
    if set(found) == set(expected):
        return expected
    missing = [g for g in expected if g not in found]
    extra = [g for g in found if g not in expected]
    label_set = "GTZAN's ten genres" if expected == GENRES else "the genres given by --genres"
    details = "; ".join(part for part in (
        f"missing: {', '.join(missing)}" if missing else "",
        f"not in the label set: {', '.join(extra)}" if extra else "") if part)
    leave_out = (f"; or move {', '.join(f'{g}/' for g in extra)} out of the data root (a folder whose name starts "
                 "with '.' is not read either)" if extra else "")
    raise UserError(
        f"The data root's genre folders differ from {label_set} ({details}).", where=scan.root,
        fix=f"run again with `--genres-from-data` (label set: {', '.join(found)}) or, the same label set by name, "
            f"`--genres {','.join(found)}`" + leave_out)


def check_split_dir(config: PipelineConfig) -> None:
    """The list files a list-based split protocol reads exist."""
    if config.split.protocol in HASH_PROTOCOLS or not config.split.split_dir:
        return
    missing = [name for name in LIST_FILES if not os.path.isfile(os.path.join(config.split.split_dir, name))]
    needed = [name for name in missing if not (config.split.protocol == "lists-trainval" and name.startswith("test"))]
    if needed:
        raise UserError(f"--split {config.split.protocol} needs {', '.join(needed)}, not found.",
                        where=config.split.split_dir,
                        fix="point --split-dir at the folder holding the fault-filtered list files")


def resolve_labelled_genres(config: PipelineConfig, found: Discovery, root: str,
                            genres_from_data: bool) -> tuple[str, ...]:
    """The label set for files labelled by tags or a manifest: every genre of the label set must have tracks;
    the data's other genres are excluded by ingestion (``genre_not_chosen``)."""
    counts = Counter(f.genre for f in found.files if f.problem is None and f.genre)
    excluded = Counter(e.reason for e in found.excluded if e.reason in labels.REASONS)
    what = "genre tags" if config.labels.source == labels.TAGS else f"manifest {config.labels.manifest}"
    named = ", ".join(f"{g} ({n})" for g, n in sorted(counts.items()))
    left_out = "; excluded: " + ", ".join(f"{r} {n}" for r, n in sorted(excluded.items())) if excluded else ""
    if len(counts) < 2:
        fix = ("tag the files' genres (ID3 TCON, Vorbis GENRE, MP4 \xa9gen, ASF WM/Genre) or pass a manifest with "
               "--labels FILE.csv" if config.labels.source == labels.TAGS
               else "give the manifest a genre for each file (path relative to the data root)")
        raise UserError(
            f"The {what} name {len(counts)} genre(s) with at least {config.labels.min_tracks_per_genre} track(s)"
            + (f" ({named})" if named else "") + f"{left_out}; a classifier needs at least two genres.",
            where=root, fix=fix + (", or lower --min-tracks-per-genre" if excluded.get(labels.RARE_GENRE) else ""))
    found_genres = tuple(sorted(counts))
    if genres_from_data:
        return found_genres
    expected = tuple(config.genres)
    missing = [g for g in expected if g not in counts]
    if not missing:
        return expected
    label_set = "GTZAN's ten genres" if expected == GENRES else "the genres given by --genres"
    raise UserError(
        f"The {what} name no track of {', '.join(missing)}, genres of {label_set} (found: {named}{left_out}).",
        where=root,
        fix=f"run again with `--genres-from-data` (label set: {', '.join(found_genres)}) or name the label set, "
            f"like `--genres {','.join(found_genres)}`; merge synonyms into a genre with --genre-map FILE "
            "(rows synonym,genre)")


def check_groups(config: PipelineConfig, root: str, genres: tuple[str, ...], found: Optional[Discovery] = None) -> None:
    """groups.TooFewGroups when the split cannot give the genres the tracks it promises, by ingestion's discovery,
    grouping and split (``found``: files labelled by tags or a manifest), before any file is decoded. Copies of the
    same audio are found only by ingestion; the check after ingestion guards what they remove."""
    if config.split.protocol not in HASH_PROTOCOLS:
        return
    by_track: dict[str, AudioFile] = {}  # a track's first file
    for f in (found or sort_entries(walk(root))).files:
        if f.problem is None and f.genre in genres:
            by_track.setdefault(f.track_id, f)
    files = list(by_track.values())
    splits.check_files(files, groups.group_keys(files, config.split.group_by), config.split,
                       where=f"{root}, --split {config.split.protocol}")


def preflight(config: PipelineConfig, data_root: str, genres_from_data: bool) -> tuple[str, ...]:
    """Every cheap check; returns the label set to use."""
    found: Optional[Discovery] = None
    if config.labels.source == labels.FOLDERS:
        scan = scan_data_root(data_root)
        genres, data_root = resolve_genres(config, scan, genres_from_data), scan.root
    else:  # ingestion's discovery, labelled by tags or a manifest
        if not os.path.isdir(data_root):
            scan_data_root(data_root)  # its paragraph for a missing root
        found = label(sort_entries(walk(data_root), "", config.labels.source), config.labels, config.genres, data_root)
        genres = resolve_labelled_genres(config, found, data_root, genres_from_data)
    check_split_dir(config)
    check_groups(config, data_root, genres, found)
    return genres
