"""Decide, on the launcher, what happens to each discovered file before any decoding."""
from __future__ import annotations

from typing import Optional, Sequence

from components.audio_example_gen import splits
from components.audio_example_gen.discovery import Discovery
from components.audio_example_gen.ingest import (DUPLICATE_TRACK, EXCLUDED, QUARANTINED, UNKNOWN_GENRE,
                                                 FileTask)
from pipeline.config import SplitConfig


def plan_tasks(discovery: Discovery, split: SplitConfig, genres: Sequence[str],
               lists: Optional[dict[str, str]] = None) -> list[FileTask]:
    """Decide, before any decoding, what happens to each discovered file.

    Entries that are not readable files (discovery's ``problem``), folders that are not
    one of ``genres`` (the label set, config.genres) and second copies of a track_id
    (same stem in another folder or with another extension) are quarantined; the split
    protocol assigns the rest or excludes them (e.g. "not in split lists"). A file's
    label is its genre's position in ``genres``.
    """
    genres = tuple(genres)
    tasks: list[FileTask] = []
    first_seen: dict[str, str] = {}
    candidates = []
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
