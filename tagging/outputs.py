"""Rows and quarantine records: written by the workers as shards, merged by the launcher.

Not ``beam.io.WriteToText``: on the Dask runner Beam's ``iobase.Write`` ends "successfully" with an empty file
(docs/distributed.md). A shard is written whole under a temporary name and renamed, named after the paths it
holds so a re-run task overwrites its own; shards are never emitted, since the Dask runner drops what
``finish_bundle`` emits. The launcher merges them, deduplicated by path.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections import Counter
from typing import Any, Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tagging.model import TOP_K, top_k
from tagging.playlists import PLAYLIST_DIR

TAGGED, QUARANTINED = "tagged", "quarantined"
CSV_FILE, JSONL_FILE, PARQUET_FILE = "tags.csv", "tags.jsonl", "tags.parquet"
QUARANTINE_FILE, SUMMARY_FILE = "quarantine.jsonl", "summary.json"
SHARD_SUFFIX = ".jsonl"
JSONL_KEYS = ("path", "genre", "top3", "scores", "seconds", "segments", "model_version")
# what a re-run compares (tagging/incremental.py), in tags.jsonl and quarantine.jsonl where known
INDEX_KEYS = ("size", "mtime_ns", "audio_sha256", "length", "tags")
STAGING, COMMIT_FILE = ".next", "COMMITTED"  # a run's results before they replace the earlier ones
CSV_COLUMNS = ["path", "genre", *[f"top{i}_{c}" for i in range(1, TOP_K + 1) for c in ("genre", "score")],
               "seconds", "segments", "model_version"]


def to_record(result: Any) -> dict[str, Any]:
    """RunInference's PredictionResult -> one record: a tagged row or a quarantine entry."""
    meta, inference, version = result.example, result.inference, result.model_id
    if inference is None or "reason" in inference:
        bad = inference or meta
        return {"status": QUARANTINED, "path": meta["path"], "reason": bad["reason"], "detail": bad["detail"]}
    ranked = top_k(inference["genres"], inference["scores"])
    return {"status": TAGGED, "path": meta["path"], "genre": inference["genre"],
            "top3": [{"genre": g, "score": s} for g, s in ranked],
            "scores": dict(zip(inference["genres"], inference["scores"])),
            "seconds": meta["seconds"], "segments": inference["segments"], "model_version": version,
            "audio_sha256": meta.get("audio_sha256")}


def _put(path: str, data: bytes) -> None:
    """Write ``path`` whole: a temporary name first, then one rename."""
    temp = f"{path}.tmp-{os.getpid()}"
    with FileSystems.create(temp) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temp], [path])


class WriteShards(beam.DoFn):
    """Records -> ``<shard_dir>/<hash of their paths>.jsonl``; emits nothing the pipeline needs."""

    def __init__(self, shard_dir: str, flush_every: int = 16):
        self._dir, self._flush_every = shard_dir, flush_every

    def start_bundle(self) -> None:
        self._buffer: list[dict[str, Any]] = []

    def process(self, record: dict[str, Any]):
        self._buffer.append(record)
        if len(self._buffer) >= self._flush_every:
            yield self._flush()

    def finish_bundle(self) -> None:
        if self._buffer:
            self._flush()

    def _flush(self) -> str:
        records, self._buffer = sorted(self._buffer, key=lambda r: r["path"]), []
        name = hashlib.sha1("\n".join(r["path"] for r in records).encode()).hexdigest()[:20]
        path = os.path.join(self._dir, name + SHARD_SUFFIX)
        _put(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())
        return path


def jsonl_records(path: str) -> Iterator[dict[str, Any]]:
    """The JSON lines of ``path`` one at a time (none where it does not exist)."""
    if FileSystems.exists(path):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            yield from (json.loads(line) for line in io.TextIOWrapper(f, encoding="utf-8") if line.strip())


def read_shards(shard_dir: str) -> list[dict[str, Any]]:
    """Every record in the shards, one per path (a re-run shard repeats its paths), sorted by path."""
    by_path: dict[str, dict[str, Any]] = {}
    for path in shard_paths(shard_dir):
        by_path.update((record["path"], record) for record in jsonl_records(path))
    return [by_path[p] for p in sorted(by_path)]


def shard_paths(shard_dir: str) -> list[str]:
    match = FileSystems.match([os.path.join(shard_dir, "*" + SHARD_SUFFIX)])[0]
    return sorted(m.path for m in match.metadata_list)


def count_shard_records(shard_dir: str) -> int:
    """Records written so far (for the progress line; a re-run shard may count twice)."""
    total = 0
    for path in shard_paths(shard_dir):
        with contextlib.suppress(OSError), FileSystems.open(path) as f:  # OSError: renamed or replaced meanwhile
            total += f.read().count(b"\n")
    return total


def _values(row: dict[str, Any]) -> list[Any]:
    """A tagged row's CSV_COLUMNS, unformatted; None where it has fewer than TOP_K genres."""
    top = [v for entry in row["top3"] for v in (entry["genre"], entry["score"])]
    return [row["path"], row["genre"], *top, *[None] * (2 * TOP_K - len(top)), row["seconds"], row["segments"],
            str(row["model_version"])]


def summarize(records: list[dict[str, Any]], wall_seconds: float, genres: Iterable[str],
              inferred: Optional[list[dict[str, Any]]] = None, **context: Any) -> dict[str, Any]:
    """Files, per-genre counts and quarantine reasons of the results; the seconds and throughput of the files this
    run decoded, ``inferred`` (default: all)."""
    rows = [r for r in records if r["status"] == TAGGED]
    bad = [r for r in records if r["status"] == QUARANTINED]
    inferred = records if inferred is None else inferred
    seconds = sum(r["seconds"] for r in inferred if r["status"] == TAGGED)
    per_genre = Counter(r["genre"] for r in rows)
    return {
        **context, "files": {"listed": len(records), TAGGED: len(rows), QUARANTINED: len(bad)},
        "genres": {g: per_genre.get(g, 0) for g in genres} | {g: n for g, n in per_genre.items() if g not in genres},
        "quarantine_reasons": dict(sorted(Counter(r["reason"] for r in bad).items())),
        "quarantined": [{k: r[k] for k in ("path", "reason", "detail")} for r in bad],
        "audio_seconds": round(seconds, 3), "wall_seconds": round(wall_seconds, 3),
        "audio_seconds_per_wall_second": round(seconds / wall_seconds, 2) if wall_seconds > 0 else None,
        "files_per_second": round(len(inferred) / wall_seconds, 3) if wall_seconds > 0 else None,
    }


def write_outputs(out_dir: str, records: list[dict[str, Any]], summary: dict[str, Any],
                  parquet: bool = True) -> dict[str, str]:
    """tags.csv, tags.jsonl, (tags.parquet), quarantine.jsonl, summary.json; returns their paths."""
    rows = [r for r in records if r["status"] == TAGGED]
    paths = {name: os.path.join(out_dir, name) for name in (CSV_FILE, JSONL_FILE, QUARANTINE_FILE)}
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([("" if v is None else f"{v:.6f}" if c.endswith("_score") else v)
                      for c, v in zip(CSV_COLUMNS, _values(r))] for r in rows)
    _put(paths[CSV_FILE], text.getvalue().encode())
    _put(paths[JSONL_FILE], "".join(_jsonl(r, JSONL_KEYS) for r in rows).encode())
    _put(paths[QUARANTINE_FILE], "".join(_jsonl(r, ("path", "reason", "detail"))
                                         for r in records if r["status"] == QUARANTINED).encode())
    data = _parquet(rows) if parquet else None
    if data is not None:
        paths[PARQUET_FILE] = os.path.join(out_dir, PARQUET_FILE)
        _put(paths[PARQUET_FILE], data)
    paths[SUMMARY_FILE] = os.path.join(out_dir, SUMMARY_FILE)
    _put(paths[SUMMARY_FILE], (json.dumps(summary, indent=2) + "\n").encode())
    return paths


def _jsonl(record: dict[str, Any], keys: Iterable[str]) -> str:
    index = {k: record[k] for k in INDEX_KEYS if record.get(k) is not None}
    return json.dumps({**{k: record[k] for k in keys}, **index}) + "\n"


def _parquet(rows: list[dict[str, Any]]) -> Optional[bytes]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pyarrow comes with TFX; without it CSV and JSON lines are enough
        return None
    columns = list(zip(*(_values(r) for r in rows))) or [()] * len(CSV_COLUMNS)
    types = {c: (pa.float64() if c.endswith("_score") or c == "seconds" else pa.int64() if c == "segments"
                 else pa.string()) for c in CSV_COLUMNS}
    table = pa.table({c: pa.array(list(values), types[c]) for c, values in zip(CSV_COLUMNS, columns)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def commit(out_dir: str, staging: str) -> None:
    """Replace the results in ``out_dir`` by the files in ``staging`` (``<out_dir>/.next``): their list into the
    marker, then :func:`finish` moves them. A run killed before the marker leaves the earlier results whole; one
    killed after it, a mix the next run's :func:`finish` completes first."""
    if "://" in staging:
        names = [os.path.basename(m.path) for m in FileSystems.match([os.path.join(staging, "*")])[0].metadata_list]
    else:
        names = [os.path.relpath(os.path.join(d, n), staging) for d, _, ns in os.walk(staging) for n in ns]
    _put(os.path.join(staging, COMMIT_FILE), json.dumps(sorted(names)).encode())
    finish(out_dir)


def finish(out_dir: str) -> None:
    """Move a committed staging folder's files into place (again, after a kill) and drop the folder; an uncommitted
    one, a killed run's, is dropped. Playlists not in the new results go."""
    staging = os.path.join(out_dir, STAGING)
    marker = os.path.join(staging, COMMIT_FILE)
    if FileSystems.exists(marker):
        with FileSystems.open(marker, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            names = json.loads(f.read())
        for name in names:
            source, target = os.path.join(staging, name), os.path.join(out_dir, name)
            if "://" not in out_dir:
                with contextlib.suppress(FileNotFoundError):  # moved before a kill
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(source, target)
            elif FileSystems.exists(source):
                if FileSystems.exists(target):
                    FileSystems.delete([target])
                FileSystems.rename([source], [target])
        lists = os.path.join(out_dir, PLAYLIST_DIR)
        for old in os.listdir(lists) if "://" not in out_dir and os.path.isdir(lists) else ():
            if os.path.join(PLAYLIST_DIR, old) not in names:
                os.remove(os.path.join(lists, old))
    if FileSystems.exists(staging):
        FileSystems.delete([staging])
