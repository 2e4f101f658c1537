"""Decide, on the launcher, what happens to each discovered file before any decoding: one small FileTask per entry
of the root, which the executor writes to task files so the Beam graph holds no per-file work."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

from audio import decode as audio_lib
from audio import groups, labels
from audio.discovery import AudioFile, Discovery
from components.audio_example_gen import duplicates, spans, splits
from components.audio_example_gen.ingest import (DUPLICATE_AUDIO, DUPLICATE_TRACK, EXCLUDED, INGESTED, PENDING,
                                                 QUARANTINED, UNKNOWN_GENRE, FileTask)
from config.settings import SplitConfig


@dataclasses.dataclass
class Plan:
    tasks: list[FileTask]   # one per entry of the root, sorted by path, but for the carried ones
    group_by: str
    group_fallbacks: int    # files of a tag grouping without the tag (grouped by folder instead)
    group_placeholders: int  # files alone in their group: their album or artist is a placeholder name
    # An earlier run's records of files unchanged since, which are not decoded again, and of tracks it ingested that
    # this run does not keep (removed, changed, or no longer chosen); empty for a run from scratch.
    carried: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    retired: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # rel_path -> size, mtime_ns and head (the duplicate check's digest) of each file to decode, for the index
    facts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Files to decode that are new or changed at their path, unchanged ones carried, earlier tracks retired."""
        earlier = {r["path"] for r in self.retired}
        decoded = [t for t in self.tasks if t.status == PENDING]
        changed = sum(t.rel_path in earlier for t in decoded)
        return {spans.NEW: len(decoded) - changed, spans.CHANGED: changed, spans.UNCHANGED: len(self.carried),
                spans.MOVED_OR_REMOVED: len(self.retired) - changed}


def _task(f: AudioFile, **fields) -> FileTask:
    return FileTask(f.path, f.rel_path, f.genre, f.track_id, **fields)


def _not_chosen(f: AudioFile, genres: Sequence[str], source: str) -> FileTask:
    """A file whose genre is not in the label set: quarantined ``unknown_genre`` under genre folders (a folder
    preflight would have refused), excluded ``genre_not_chosen`` when its tag or manifest row names it."""
    if source == labels.FOLDERS:
        return _task(f, status=QUARANTINED, reason=UNKNOWN_GENRE,
                     detail=f"folder {f.genre!r} is not one of the genres {', '.join(genres)}")
    return _task(f, status=EXCLUDED, reason=labels.GENRE_NOT_CHOSEN,
                 detail=f"genre {f.genre!r} is not one of the genres {', '.join(genres)}")


def make_plan(discovery: Discovery, split: SplitConfig, genres: Sequence[str], max_seconds: float = math.inf,
              where: str = "AudioExampleGen", earlier: Optional[Mapping[str, dict[str, Any]]] = None) -> Plan:
    """One task per entry of the root, sorted by path: excluded (by discovery, the label set or the split protocol),
    quarantined (unreadable, unknown genre folder, second file of a track_id, duplicate audio), or to decode with its
    group, split and label. A split the library cannot fill raises groups.TooFewGroups (``where`` names the step)
    before the duplicate check decodes anything (its reads bounded by ``max_seconds``). ``earlier``: the last run's
    track index by path; an unchanged file keeps its split and, decoded with the same label, its record."""
    genres = tuple(genres)
    earlier = earlier or {}
    tasks = [FileTask(e.rel_path, e.rel_path, "", "", status=EXCLUDED, reason=e.reason, detail=e.detail)
             for e in discovery.excluded]
    first_seen: dict[str, AudioFile] = {}
    named = []
    for f in discovery.files:
        if f.problem is not None:
            tasks.append(_task(f, status=QUARANTINED, reason=f.problem.reason, detail=f.problem.detail))
        elif f.genre not in genres:
            tasks.append(_not_chosen(f, genres, discovery.source))
        elif f.track_id in first_seen:
            tasks.append(_task(f, status=QUARANTINED, reason=DUPLICATE_TRACK, detail=(
                f"track_id {f.track_id!r} is already taken by {first_seen[f.track_id].rel_path} (the same path with "
                "another extension); keep one of the two files")))
        else:
            first_seen[f.track_id] = f
            named.append(f)
    grouping = groups.group_keys(named, split.group_by)
    splits.check_files(named, grouping, split, where)
    states = {f.rel_path: spans.file_state(f.path) for f in named}
    same = {f.rel_path: earlier[f.rel_path] for f in named
            if spans.unchanged(earlier.get(f.rel_path), states[f.rel_path], f.path)}
    heads = {f.path: same[f.rel_path].get("head") for f in named if f.rel_path in same and "head" in same[f.rel_path]}
    copies = duplicates.find(((f.path, f.rel_path) for f in named), max_seconds, heads=heads)
    candidates = []
    for f in named:
        if f.rel_path in copies:
            tasks.append(_task(f, status=QUARANTINED, reason=DUPLICATE_AUDIO,
                               detail=f"the same decoded audio as {copies[f.rel_path]}, which is kept"))
        else:
            candidates.append(f)
    plan = splits.assign([splits.Track(f.track_id, f.genre, grouping.keys[f.track_id], f.list_key)
                          for f in candidates], split)
    carried, facts = [], {}
    for f in candidates:
        group = grouping.keys[f.track_id]
        before = same.get(f.rel_path)
        if f.track_id in plan.excluded:
            tasks.append(_task(f, status=EXCLUDED, reason=plan.excluded[f.track_id], group=group))
            continue
        task = _task(f, split=plan.assigned[f.track_id], label=genres.index(f.genre), group=group)
        if before is not None and before["status"] == INGESTED:  # a track keeps its split as the library grows
            task = dataclasses.replace(task, split=before["split"])
        elif before is not None and before.get("reason") not in audio_lib.REASONS:
            before = None  # excluded, or quarantined before decoding: planned afresh above
        size, mtime_ns = states[f.rel_path] or (None, None)
        if before is not None and (before["status"] == QUARANTINED  # found bad when decoded: still bad
                                   or (before["genre"], before["group"]) == (task.genre, task.group)):
            carried.append({**before, "size": size, "mtime_ns": mtime_ns})
            continue
        tasks.append(task)
        facts[f.rel_path] = {"size": size, "mtime_ns": mtime_ns, "head": heads.get(f.path)}
    kept = {f.track_id for f in candidates}
    kept_paths = {r["path"] for r in carried}
    retired = [r for r in earlier.values() if r["status"] == INGESTED and r["path"] not in kept_paths]
    return Plan(sorted(tasks, key=lambda t: t.rel_path), grouping.group_by, len(grouping.by_folder & kept),
                len(grouping.alone & kept), carried, retired, facts)


def plan_tasks(discovery: Discovery, split: SplitConfig, genres: Sequence[str]) -> list[FileTask]:
    """:func:`make_plan`'s tasks."""
    return make_plan(discovery, split, genres).tasks
