"""Decide, on the launcher, what happens to each discovered file before any decoding."""
from __future__ import annotations

import math
from typing import Optional, Sequence

from components.audio_example_gen import duplicates, splits
from components.audio_example_gen.discovery import Discovery
from components.audio_example_gen.ingest import (DUPLICATE_AUDIO, DUPLICATE_TRACK, EXCLUDED, QUARANTINED,
                                                 UNKNOWN_GENRE, FileTask)
from pipeline.config import SplitConfig


def plan_tasks(discovery: Discovery, split: SplitConfig, genres: Sequence[str],
               lists: Optional[dict[str, str]] = None, max_seconds: float = math.inf) -> list[FileTask]:
    """One task per entry of the root, sorted by path: excluded, quarantined, or to decode with its split.

    Entries discovery excluded (hidden, not audio, outside the genre folders...) stay
    excluded with their reason. Entries that are not readable files (discovery's
    ``problem``), folders that are not one of ``genres`` (the label set, config.genres),
    second copies of a track_id (same stem in another folder or with another extension) and
    copies of the same decoded audio (duplicates.py, before the split) are quarantined; the
    split protocol assigns the rest or excludes them (e.g. "not in split lists"). A file's
    label is its genre's position in ``genres``. ``max_seconds`` bounds the duplicate check's reads.
    """
    genres = tuple(genres)
    tasks = [FileTask(e.rel_path, e.rel_path, "", "", status=EXCLUDED, reason=e.reason, detail=e.detail)
             for e in discovery.excluded]
    first_seen: dict[str, str] = {}
    named = []
    for f in discovery.files:
        if f.problem is not None:
            tasks.append(FileTask(f.path, f.rel_path, f.genre, f.track_id, status=QUARANTINED,
                                  reason=f.problem.reason, detail=f.problem.detail))
        elif f.genre not in genres:
            tasks.append(FileTask(f.path, f.rel_path, f.genre, f.track_id, status=QUARANTINED, reason=UNKNOWN_GENRE,
                                  detail=f"folder {f.genre!r} is not one of the genres {', '.join(genres)}"))
        elif f.track_id in first_seen:
            tasks.append(FileTask(f.path, f.rel_path, f.genre, f.track_id, status=QUARANTINED, reason=DUPLICATE_TRACK,
                                  detail=f"track_id {f.track_id!r} is already taken by {first_seen[f.track_id]}"))
        else:
            first_seen[f.track_id] = f.rel_path
            named.append(f)
    copies = duplicates.find(((f.path, f.rel_path) for f in named), max_seconds)
    candidates = []
    for f in named:
        if f.rel_path in copies:
            tasks.append(FileTask(f.path, f.rel_path, f.genre, f.track_id, status=QUARANTINED, reason=DUPLICATE_AUDIO,
                                  detail=f"the same decoded audio as {copies[f.rel_path]}, which is kept"))
        else:
            candidates.append(f)
    plan = splits.assign([splits.Track(f.track_id, f.genre) for f in candidates], split, lists)
    for f in candidates:
        if f.track_id in plan.excluded:
            tasks.append(FileTask(f.path, f.rel_path, f.genre, f.track_id, status=EXCLUDED,
                                  reason=plan.excluded[f.track_id]))
        else:
            tasks.append(FileTask(f.path, f.rel_path, f.genre, f.track_id, split=plan.assigned[f.track_id],
                                  label=genres.index(f.genre)))
    return sorted(tasks, key=lambda t: t.rel_path)
