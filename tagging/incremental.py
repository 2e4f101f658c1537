"""A re-run into an ``--out`` that holds earlier results tags only what is new or changed since.

tags.jsonl and quarantine.jsonl rows record their file's size and time when listed and its audio stream's hash
(the demuxed packets, as ``--write-tags`` checks them); summary.json the model's identity. A file at a recorded
path with the recorded size and time is unchanged; with others its audio is hashed: the same audio was re-tagged
(unchanged), other audio is changed. A file at a new path is hashed while recorded paths are missing: the same
audio moved. Only new and changed files reach the Beam graph. Another model identity, or ``--retag``, tags all.
The earlier results are read streamed: a small tuple per path, never a row, until the rows carried over are read.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from typing import Any, Collection, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from config.settings import AudioConfig
from tagging import model as model_lib
from tagging.outputs import JSONL_FILE, QUARANTINE_FILE, QUARANTINED, SUMMARY_FILE, TAGGED, jsonl_records
from tagging.write_back import audio_hash

KINDS = ("new", "changed", "moved", "removed", "unchanged")
Index = dict[str, tuple[int, int, Optional[str], bool]]  # path -> size, mtime_ns, audio hash, quarantined


@dataclasses.dataclass
class Changes:
    """What this run does with each listed file."""

    to_infer: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # new and changed: (path, rel)
    carried: dict[str, str] = dataclasses.field(default_factory=dict)  # rel now -> rel in the earlier results
    stats: dict[str, Optional[tuple[int, int]]] = dataclasses.field(default_factory=dict)  # rel -> size, mtime_ns
    counts: Counter = dataclasses.field(default_factory=Counter)  # KINDS -> files


def identity(model: model_lib.ModelRef, audio: AudioConfig) -> dict[str, Any]:
    """What the answers depend on beside the audio: the model's version and files, the decode rate and segments."""
    return {"version": model.version, "fingerprint": model_lib.fingerprint(model), "sample_rate": audio.sample_rate,
            "segment_seconds": audio.segment_seconds, "hop_seconds": audio.hop_seconds}


def read_index(out_dir: str, model_identity: dict[str, Any], retag: bool = False) -> tuple[Index, str]:
    """The earlier results, or none and the reason every file is tagged again ("" on a first run)."""
    summary_path = os.path.join(out_dir, SUMMARY_FILE)
    if not FileSystems.exists(summary_path):
        return {}, ""
    with FileSystems.open(summary_path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        earlier = json.loads(f.read()).get("model_identity") or {}
    if retag or earlier != model_identity:
        return {}, "--retag" if retag else (f"the model differs from the earlier run's (version "
                                            f"{earlier.get('version', 'not recorded')}, now "
                                            f"{model_identity['version']}; or another SavedModel, rate or segments)")
    index = {}
    for name, quarantined in ((JSONL_FILE, False), (QUARANTINE_FILE, True)):
        for r in jsonl_records(os.path.join(out_dir, name)):
            if "size" in r:  # entries that were never read as files (a broken link) are listed again
                index[r["path"]] = (r["size"], r["mtime_ns"], r.get("audio_sha256"), quarantined)
    return index, ""


def _stat(path: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:  # a URI, or gone since it was listed (decoding quarantines it)
        return None
    return st.st_size, st.st_mtime_ns


def compare(files: list[tuple[str, str]], index: Index, unlisted: Collection[str] = ()) -> Changes:
    """Each listed file's kind against the earlier results ``index``; ``unlisted``: paths listed as unreadable,
    which are neither compared nor removed."""
    changes = Changes()
    listed, unlisted = {rel for _, rel in files}, set(unlisted)
    missing = [rel for rel in index if rel not in listed and rel not in unlisted]
    gone = {index[rel][2]: rel for rel in missing if index[rel][2] and not index[rel][3]}  # audio -> its old path
    for path, rel in files:
        stat = changes.stats[rel] = _stat(path)
        earlier = index.get(rel)
        if earlier is not None:
            same = stat is not None and (stat == earlier[:2] or (
                earlier[2] is not None and not earlier[3] and audio_hash(path) == earlier[2]))
            kind, source = ("unchanged" if same else "changed"), rel
        else:
            source = gone.pop(audio_hash(path), None) if gone and stat is not None else None
            kind = "moved" if source else "new"
        if kind in ("unchanged", "moved"):
            changes.carried[rel] = source
        else:
            changes.to_infer.append((path, rel))
        changes.counts[kind] += 1
    changes.counts["removed"] = len(missing) - changes.counts["moved"]
    return changes


def carried_records(out_dir: str, changes: Changes) -> list[dict[str, Any]]:
    """The earlier rows and quarantine records of the files that carry over, at their paths now; a file whose
    size or time changed (re-tagged, moved) takes its new ones and is planned again (its ``tags`` dropped)."""
    now_of = {before: now for now, before in changes.carried.items()}  # one each: a move's old path is gone
    found = []
    for name, status in ((JSONL_FILE, TAGGED), (QUARANTINE_FILE, QUARANTINED)):
        for r in jsonl_records(os.path.join(out_dir, name)):
            if (now := now_of.get(r["path"])) is not None:
                found.append({**r, "status": status, "path": now})
                if changes.stats[now] != (r["size"], r["mtime_ns"]):
                    found[-1].pop("tags", None)
                    found[-1]["size"], found[-1]["mtime_ns"] = changes.stats[now]
    return found
