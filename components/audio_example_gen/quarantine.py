"""The ingestion report, artifact ``AudioQuarantine``: quarantine.jsonl (one line per bad file), files.jsonl (one
record per entry of the data root, in no particular order) and summary.json (counts, files of each kind, throughput;
lists name the first LISTED_AT_MOST and count all). Read one record at a time: no step holds the whole library."""
from __future__ import annotations

import bisect
import json
import os
from collections import Counter, defaultdict
from typing import Any, Iterable, Iterator, Sequence

from tfx.dsl.io import fileio
from tfx.types import artifact

from audio import decode as audio_lib
from audio import filecheck
from components.audio_example_gen.ingest import (DUPLICATE_AUDIO, DUPLICATE_TRACK, EXCLUDED, INGESTED,
                                                 QUARANTINED, UNKNOWN_GENRE)
from config.settings import SPLITS

QUARANTINE_FILE = "quarantine.jsonl"
FILES_FILE = "files.jsonl"
SUMMARY_FILE = "summary.json"
REASONS = (*filecheck.REASONS, *audio_lib.REASONS, UNKNOWN_GENRE, DUPLICATE_TRACK, DUPLICATE_AUDIO)
LISTED_AT_MOST = 20  # files named per list in summary.json; files.jsonl has every one


class AudioQuarantine(artifact.Artifact):
    """Files AudioExampleGen refused, with the reason, and the run's ingestion summary."""

    # "<namespace>.<Type>": the Kubeflow V2 compiler refuses custom type names without one.
    TYPE_NAME = "genre.AudioQuarantine"


class FirstNames:
    """A count and the first LISTED_AT_MOST items in sorted order, whatever order they come in (memory: those)."""

    def __init__(self, items: Iterable[str] = ()):
        self.count = 0
        self._first: list[tuple[str, Any]] = []
        for item in items:
            self.add(item)

    def add(self, key: str, item: Any = None) -> None:
        self.count += 1
        if len(self._first) == LISTED_AT_MOST and key >= self._first[-1][0]:
            return
        bisect.insort(self._first, (key, key if item is None else item), key=lambda pair: pair[0])
        del self._first[LISTED_AT_MOST:]

    @property
    def first(self) -> list[Any]:
        return [item for _, item in self._first]


def summarize(records: Iterable[dict[str, Any]], wall_seconds: float, genres: Sequence[str],
              ignored_non_audio_files: Iterable[str] = (), **context: Any) -> dict[str, Any]:
    """Counts and throughput of one run, in one pass over ``records`` (memory: the ingested tracks' group keys, not
    the records); ``context`` is copied in. ``decoded_seconds`` is less than ``audio_seconds`` where only a long
    track's kept windows were read; ``warnings`` starts empty (checks.warnings fills it)."""
    status: Counter = Counter()
    per_split = {s: {"tracks": 0, "segments": 0, "seconds": 0.0, "groups": 0} for s in SPLITS}
    per_genre: dict[str, dict[str, dict[str, int]]] = {
        g: {s: {"tracks": 0, "segments": 0, "groups": 0} for s in SPLITS} for g in genres}
    groups_in: dict[tuple[str, str], set[str]] = defaultdict(set)  # (genre, or "" for all, split) -> group keys
    excluded: dict[str, FirstNames] = defaultdict(FirstNames)
    bad, truncated, cut = FirstNames(), FirstNames(), FirstNames()
    reasons: Counter = Counter()
    audio_seconds, decoded_seconds, view_segments = 0.0, 0.0, 0
    for r in records:
        status[r["status"]] += 1
        if r["status"] == INGESTED:
            split, genre = r["split"], r["genre"]
            for counts in (per_split[split], per_genre[genre][split]):
                counts["tracks"] += 1
                counts["segments"] += r["segments"]
            per_split[split]["seconds"] = round(per_split[split]["seconds"] + r["seconds"], 3)
            for key in ("", genre):
                groups_in[key, split].add(r.get("group") or r["track_id"])
            audio_seconds += r["seconds"]
            decoded_seconds += r.get("decoded_seconds", r["seconds"])
            view_segments += r.get("view_segments", 0)
            if r.get("truncated"):
                truncated.add(r["path"])
            if r["segments"] < r.get("segments_in_track", 0):
                cut.add(r["path"], {"path": r["path"], "segments_kept": r["segments"],
                                    "segments_in_track": r["segments_in_track"]})
        elif r["status"] == EXCLUDED:
            excluded[r["reason"]].add(r["path"])
        elif r["status"] == QUARANTINED:
            reasons[r["reason"]] += 1
            bad.add(r["path"], quarantine_entry(r))
    for (genre, split), keys in groups_in.items():
        (per_genre[genre] if genre else per_split)[split]["groups"] = len(keys)
    ignored = FirstNames(ignored_non_audio_files)
    considered = status[INGESTED] + status[QUARANTINED]
    return {
        **context,
        "files": {"discovered": sum(status.values()), INGESTED: status[INGESTED], QUARANTINED: status[QUARANTINED],
                  EXCLUDED: status[EXCLUDED]},
        "bad_fraction": round(status[QUARANTINED] / considered, 6) if considered else 0.0,
        "splits": per_split,
        "genres": per_genre,
        "listed_at_most": LISTED_AT_MOST,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "quarantined": bad.first,
        "excluded": {reason: names.first for reason, names in sorted(excluded.items())},
        "excluded_counts": {reason: names.count for reason, names in sorted(excluded.items())},
        "truncated": truncated.first,
        "truncated_count": truncated.count,
        "cut_tracks": cut.first,
        "cut_tracks_count": cut.count,
        "ignored_non_audio_files": ignored.first,
        "ignored_non_audio_files_count": ignored.count,
        "warnings": [],
        "audio_seconds": round(audio_seconds, 3),
        "decoded_seconds": round(decoded_seconds, 3),
        "view_segments": view_segments,
        "wall_seconds": round(wall_seconds, 3),
        "audio_seconds_per_wall_second": round(audio_seconds / wall_seconds, 1) if wall_seconds > 0 else None,
    }


def quarantine_entry(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("path", "genre", "reason", "detail")}


def read_records(path: str) -> Iterator[dict[str, Any]]:
    """The records of a files.jsonl, one at a time."""
    with fileio.open(path, "r") as f:
        for line in f:
            line = line.decode() if isinstance(line, bytes) else line
            if line.strip():
                yield json.loads(line)


def write_report(uri: str, files_jsonl: str, summary: dict[str, Any]) -> None:
    """Write quarantine.jsonl, files.jsonl (a copy, unless already there) and summary.json into the folder ``uri``."""
    fileio.makedirs(uri)
    target = os.path.join(uri, FILES_FILE)
    if os.path.normpath(files_jsonl) != os.path.normpath(target):
        fileio.copy(files_jsonl, target, overwrite=True)
    with fileio.open(os.path.join(uri, QUARANTINE_FILE), "w") as f:
        for r in read_records(target):
            if r["status"] == QUARANTINED:
                f.write(json.dumps(quarantine_entry(r)) + "\n")
    with fileio.open(os.path.join(uri, SUMMARY_FILE), "w") as f:
        f.write(json.dumps(summary, indent=2) + "\n")


def format_table(summary: dict[str, Any]) -> str:
    """Human-readable per-genre x per-split counts (tracks/segments/groups) for the log."""
    def cell(counts: dict[str, int]) -> str:
        return f"{counts['tracks']:>7}/{counts['segments']:<8}/{counts.get('groups', 0):<6}"

    lines = [f"{'genre':<10} " + " ".join(f"{s + ' trk/seg/grp':>23}" for s in SPLITS)]
    for genre, by_split in summary["genres"].items():
        lines.append(f"{genre:<10} " + " ".join(cell(by_split[s]) for s in SPLITS))
    lines.append(f"{'total':<10} " + " ".join(cell(summary["splits"][s]) for s in SPLITS))
    lines.append(f"groups: --group-by {summary.get('group_by', 'track')}"
                 + (f" ({summary['group_fallbacks']} files without the tag, grouped by folder)"
                    if summary.get("group_fallbacks") else "")
                 + (f" ({summary['group_placeholders']} tracks alone: a placeholder name)"
                    if summary.get("group_placeholders") else ""))
    return "\n".join(lines)
