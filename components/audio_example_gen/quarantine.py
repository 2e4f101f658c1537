"""The ingestion report: quarantined files, counts, throughput.

Output artifact ``AudioQuarantine`` (second output of AudioExampleGen) holds:

- ``quarantine.jsonl``: one line per bad file, ``{"path", "genre", "reason", "detail"}``
  (path relative to the data root; reasons in :data:`REASONS`);
- ``files.jsonl``: one line per entry of the data root (discovery.py), whatever happened to it
  (ingested with its split, segment count and ``truncated`` flag, quarantined, or
  excluded and why);
- ``summary.json``: counts per split and per genre, bad and excluded files, truncated
  files, tracks cut to audio.max_segments_per_track, warnings, seconds of audio, wall
  time and throughput (see :func:`summarize`).

The gates that read it (too many bad files, empty splits) are in checks.py.
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence

from tfx.dsl.io import fileio
from tfx.types import artifact

from components.audio_example_gen import audio as audio_lib
from components.audio_example_gen import filecheck
from components.audio_example_gen.ingest import (DUPLICATE_AUDIO, DUPLICATE_TRACK, EXCLUDED, INGESTED,
                                                 QUARANTINED, UNKNOWN_GENRE)
from pipeline.config import SPLITS

QUARANTINE_FILE = "quarantine.jsonl"
FILES_FILE = "files.jsonl"
SUMMARY_FILE = "summary.json"
REASONS = (*filecheck.REASONS, *audio_lib.REASONS, UNKNOWN_GENRE, DUPLICATE_TRACK, DUPLICATE_AUDIO)


class AudioQuarantine(artifact.Artifact):
    """Files AudioExampleGen refused, with the reason, and the run's ingestion summary."""

    # "<namespace>.<Type>": the Kubeflow V2 compiler refuses custom type names without one.
    TYPE_NAME = "genre.AudioQuarantine"


def summarize(records: Iterable[dict[str, Any]], wall_seconds: float, genres: Sequence[str],
              **context: Any) -> dict[str, Any]:
    """Counts and throughput of one run; ``context`` (data root, protocol, ...) is copied in.

    ``genres`` is the label set (config.genres). ``audio_seconds`` is the decoded length, at
    the target rate, of the ingested files; ``audio_seconds_per_wall_second`` divides it by
    the wall time of the Beam pipeline. ``warnings`` starts empty (checks.warnings fills it).
    """
    records = sorted(records, key=lambda r: r["path"])
    status = Counter(r["status"] for r in records)
    per_split = {s: {"tracks": 0, "segments": 0, "seconds": 0.0} for s in SPLITS}
    per_genre: dict[str, dict[str, dict[str, int]]] = {
        g: {s: {"tracks": 0, "segments": 0} for s in SPLITS} for g in genres}
    excluded: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r["status"] == INGESTED:
            per_split[r["split"]]["tracks"] += 1
            per_split[r["split"]]["segments"] += r["segments"]
            per_split[r["split"]]["seconds"] = round(per_split[r["split"]]["seconds"] + r["seconds"], 3)
            per_genre[r["genre"]][r["split"]]["tracks"] += 1
            per_genre[r["genre"]][r["split"]]["segments"] += r["segments"]
        elif r["status"] == EXCLUDED:
            excluded[r["reason"]].append(r["path"])
    bad = [quarantine_entry(r) for r in records if r["status"] == QUARANTINED]
    considered = status[INGESTED] + status[QUARANTINED]
    audio_seconds = sum(r["seconds"] for r in records if r["status"] == INGESTED)
    return {
        **context,
        "files": {"discovered": len(records), INGESTED: status[INGESTED], QUARANTINED: status[QUARANTINED],
                  EXCLUDED: status[EXCLUDED]},
        "bad_fraction": round(len(bad) / considered, 6) if considered else 0.0,
        "splits": per_split,
        "genres": per_genre,
        "quarantine_reasons": dict(sorted(Counter(b["reason"] for b in bad).items())),
        "quarantined": bad,
        "excluded": {reason: paths for reason, paths in sorted(excluded.items())},
        "truncated": [r["path"] for r in records if r["status"] == INGESTED and r.get("truncated")],
        "cut_tracks": [{"path": r["path"], "segments_kept": r["segments"], "segments_in_track": r["segments_in_track"]}
                       for r in records if r["status"] == INGESTED and r["segments"] < r.get("segments_in_track", 0)],
        "warnings": [],
        "audio_seconds": round(audio_seconds, 3),
        "view_segments": sum(r.get("view_segments", 0) for r in records if r["status"] == INGESTED),
        "wall_seconds": round(wall_seconds, 3),
        "audio_seconds_per_wall_second": round(audio_seconds / wall_seconds, 1) if wall_seconds > 0 else None,
    }


def quarantine_entry(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("path", "genre", "reason", "detail")}


def write_report(uri: str, records: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Write quarantine.jsonl, files.jsonl and summary.json into the artifact folder."""
    fileio.makedirs(uri)
    records = sorted(records, key=lambda r: r["path"])
    with fileio.open(os.path.join(uri, QUARANTINE_FILE), "w") as f:
        f.write("".join(json.dumps(e) + "\n" for e in summary["quarantined"]))
    with fileio.open(os.path.join(uri, FILES_FILE), "w") as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    with fileio.open(os.path.join(uri, SUMMARY_FILE), "w") as f:
        f.write(json.dumps(summary, indent=2) + "\n")


def format_table(summary: dict[str, Any]) -> str:
    """Human-readable per-genre x per-split counts for the log."""
    lines = [f"{'genre':<10} " + " ".join(f"{s + ' trk/seg':>16}" for s in SPLITS)]
    for genre, by_split in summary["genres"].items():
        lines.append(f"{genre:<10} " + " ".join(
            f"{by_split[s]['tracks']:>7}/{by_split[s]['segments']:<8}" for s in SPLITS))
    lines.append(f"{'total':<10} " + " ".join(
        f"{summary['splits'][s]['tracks']:>7}/{summary['splits'][s]['segments']:<8}" for s in SPLITS))
    return "\n".join(lines)
