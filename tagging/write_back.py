"""The predicted genre and its score written into each file's own tags: planned always, written on request.

Without ``--write-tags`` nothing is opened for writing: ``write_plan.jsonl`` says what would be written. With
it, the audio is never at risk: the tags go into a fsynced copy in the file's own folder, which must read the
fields back and hash the same audio packets before the original is backed up (tagging/undo.py) and replaced
in one rename. A file that cannot be written gets a line in ``write_failures.jsonl`` and the others go on.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from typing import Any, Callable, Iterable, Optional

import mutagen

from tagging import tag_fields, undo

PLAN_FILE, FAILURES_FILE = "write_plan.jsonl", "write_failures.jsonl"
WRITTEN, UNCHANGED, PLANNED, FAILED = "written", "unchanged", "planned", "failed"

FIXES = {
    "not_local": "copy the files to a local folder (or mount it) and tag that folder.",
    "missing": "the file moved or was deleted after it was tagged; run the tagger again on its folder.",
    "not_a_file": "only regular files are written; tag the file the link points to.",
    "hard_linked": "the file has other names that a rename would split from it; tag a copy instead.",
    "read_only": "make the file writable (chmod u+w) if its tags may change, then run again.",
    "folder_read_only": "make its folder writable: the tagged copy is written beside the file, then renamed.",
    "unsupported_container": "only ID3 (MP3, AIFF, WAV), MP4, Vorbis comment (FLAC, Ogg, Opus) and ASF (WMA) "
                             "tags are written; convert the file or tag it by hand.",
    "unreadable": "mutagen or PyAV cannot read the file; check it decodes (ffprobe FILE).",
    "check_failed": "the file is left as it was (the tagged copy was not kept); the detail says what differed.",
    "changed_during_write": "another program changed the file while it was tagged; run again.",
    "write_error": "see the detail (disk full, permissions); fix it and run again.",
}


class Refused(Exception):
    """A file that is not written: its reason (a key of FIXES) and detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail

    def entry(self, planned: dict[str, Any]) -> dict[str, Any]:
        """PLANNED's plan entry marked as failed, with the reason, detail and fix."""
        return {**planned, "status": FAILED, "reason": self.reason, "detail": self.detail, "fix": FIXES[self.reason]}


def packet_digest(path: str) -> str:
    """sha256 over the first audio stream's demuxed packets: tags live outside them, so equal means same audio."""
    import av
    digest = hashlib.sha256()
    with av.open(path) as container:
        if not container.streams.audio:
            raise Refused("unreadable", "no audio stream")
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.size:
                digest.update(packet.size.to_bytes(8, "little"))
                digest.update(bytes(packet))
    return digest.hexdigest()


def audio_hash(path: str) -> Optional[str]:
    """:func:`packet_digest`, or None where the file is remote or PyAV cannot demux it (never found moved)."""
    try:
        return packet_digest(path) if "://" not in path else None
    except Exception:  # noqa: BLE001 - whatever PyAV raises, the file is only not recognised elsewhere
        return None


def _checked(path: str) -> tuple[os.stat_result, Any, str]:
    """The file's stat, its mutagen object and tag kind, or Refused with the reason it cannot be written (a file
    without its owner's write bit is read-only by intent, even to root, who could replace it)."""
    if "://" in path:
        raise Refused("not_local", path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise Refused("missing", "no such file") from None
    except OSError as err:
        raise Refused("unreadable", str(err)) from None
    if not stat.S_ISREG(st.st_mode):
        raise Refused("not_a_file", "a link or special file")
    if st.st_nlink > 1:
        raise Refused("hard_linked", f"{st.st_nlink} names")
    try:
        audio = mutagen.File(path)
    except Exception as err:  # mutagen's errors for a damaged header have no common base
        raise Refused("unreadable", f"mutagen: {err}") from None
    kind = tag_fields.kind_of(audio)  # None for None too
    if kind is None:
        raise Refused("unsupported_container", type(audio).__name__ if audio is not None else "not known to mutagen")
    if not st.st_mode & stat.S_IWUSR or not os.access(path, os.W_OK):
        raise Refused("read_only", f"mode {stat.filemode(st.st_mode)}")
    folder = os.path.dirname(path) or "."
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Refused("folder_read_only", folder)
    return st, audio, kind


def plan(path: str, genre: str, score: float, genre_field: bool = False) -> dict[str, Any]:
    """What writing would do to ``path``, reading it only: the fields, their current text, or the refusal."""
    entry: dict[str, Any] = {"path": path, "genre": genre, "score": round(float(score), 4)}
    try:
        _, audio, kind = _checked(path)
    except Refused as refused:
        return refused.entry(entry)
    fields = tag_fields.wanted(kind, genre, score, genre_field)
    try:
        current = tag_fields.read(audio, list(fields))
    except Exception as err:  # a tag frame mutagen parsed but cannot render as text
        return Refused("unreadable", f"mutagen: {err}").entry(entry)
    return {**entry, "status": UNCHANGED if current == fields else PLANNED, "container": kind, "fields": fields,
            "current": current}


def write_file(path: str, genre: str, score: float, out_dir: str, genre_field: bool = False) -> dict[str, Any]:
    """Write the fields into ``path`` atomically, logging its undo line; Refused if it cannot (other failures
    while writing propagate: apply records them as ``write_error``)."""
    undo.remove_stale_temps(path)  # before anything else, whether or not the file is written
    entry = plan(path, genre, score, genre_field)
    if entry["status"] == FAILED:
        raise Refused(entry["reason"], entry["detail"])
    if entry["status"] == UNCHANGED:
        return entry
    st, original, kind = _checked(path)
    try:
        audio_before = packet_digest(path)
    except Exception as err:
        raise err if isinstance(err, Refused) else Refused("unreadable", f"PyAV: {err}") from None
    with undo.temp_beside(path) as temp:
        sha_before = undo.copy_synced(path, temp)
        copy = type(original)(temp)  # the original's mutagen class, whatever the temporary name
        tag_fields.set_fields(copy, kind, entry["fields"])
        tag_fields.save(copy, kind)
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        _check_copy(temp, original, entry["fields"], audio_before)
        os.chmod(temp, st.st_mode & 0o7777)
        undo.chown_if_allowed(temp, st.st_uid, st.st_gid)  # else the file becomes ours, bytes and mode as planned
        sha_after = undo.sha256_of(temp)
        backup = undo.keep_backup(path, sha_before, os.path.join(out_dir, undo.UNDO_DIR))
        now = os.lstat(path)
        if (now.st_size, now.st_mtime_ns, now.st_ino) != (st.st_size, st.st_mtime_ns, st.st_ino):
            raise Refused("changed_during_write", "size, time or inode changed since the copy")
        undo.append_record(os.path.join(out_dir, undo.UNDO_LOG), path, backup, sha_before, sha_after, st)
        done = os.stat(temp)  # the file's size and time from now on (a rename keeps them)
        os.replace(temp, path)
    undo.fsync_dir(os.path.dirname(path))
    return {**entry, "status": WRITTEN, "sha256_before": sha_before, "sha256_after": sha_after,
            "size": done.st_size, "mtime_ns": done.st_mtime_ns}


def _check_copy(temp: str, original: Any, fields: dict[str, str], audio_before: str) -> None:
    """The tagged copy reads back the planned fields (mutagen) and the original's audio packets (PyAV)."""
    back = tag_fields.read(type(original)(temp), list(fields))
    if back != fields:
        raise Refused("check_failed", f"mutagen reads back {back}, not {fields}")
    after = packet_digest(temp)
    if after != audio_before:
        raise Refused("check_failed", f"the audio packets changed (sha256 {audio_before[:12]} -> {after[:12]})")


def apply(rows: Iterable[dict[str, Any]], path_of: Callable[[str], str], out_dir: str, write: bool = False,
          genre_field: bool = False, log: Callable[[str], None] = print,
          plan_dir: Optional[str] = None) -> dict[str, Any]:
    """Plan (and with ``write`` write) every tagged row's file; returns the counts per status and the logs' paths
    in ``out_dir`` (the plan and failures are written to ``plan_dir``, for the caller to move there). A row's
    ``tags`` says its file holds these fields, unchanged since (tagging/incremental.py): it is not opened again.
    A written file's row takes its new size and time, so the next run finds it unchanged."""
    plan_dir = plan_dir or out_dir
    os.makedirs(plan_dir, exist_ok=True)
    entries, failures = [], []
    held = "genre_field" if genre_field else "own"
    for row in rows:
        path, score = path_of(row["path"]), _score(row)
        try:
            if row.get("tags") == held:
                entry = {"path": path, "genre": row["genre"], "score": round(score, 4), "status": UNCHANGED}
            elif write:
                entry = write_file(path, row["genre"], score, out_dir, genre_field)
            else:
                entry = plan(path, row["genre"], score, genre_field)
        except Exception as err:  # one file's trouble is its record; the others are still written
            refused = err if isinstance(err, Refused) else Refused("write_error", f"{type(err).__name__}: {err}")
            entry = refused.entry({"path": path, "genre": row["genre"], "score": round(score, 4)})
        row.pop("tags", None)
        if entry["status"] in (WRITTEN, UNCHANGED):
            row["tags"] = held
        if entry["status"] == WRITTEN:
            row["size"], row["mtime_ns"] = entry["size"], entry["mtime_ns"]
        entries.append(entry)
        if entry["status"] == FAILED:
            failures.append({k: entry[k] for k in ("path", "reason", "detail", "fix")})
            log(f"[write-tags] not written: {path}: {entry['reason']} ({entry['detail']}); fix: {entry['fix']}")
    _write_jsonl(os.path.join(plan_dir, PLAN_FILE), entries)
    _write_jsonl(os.path.join(plan_dir, FAILURES_FILE), failures)
    files = {"plan": os.path.join(out_dir, PLAN_FILE), "failures": os.path.join(out_dir, FAILURES_FILE)}
    if write and os.path.exists(os.path.join(out_dir, undo.UNDO_LOG)):
        files["undo_log"] = os.path.join(out_dir, undo.UNDO_LOG)
    counts = {s: sum(e["status"] == s for e in entries) for s in (WRITTEN, UNCHANGED, PLANNED, FAILED)}
    verb = "written" if write else "planned (dry run: nothing written; --write-tags writes them)"
    log(f"[write-tags] {counts[WRITTEN] if write else counts[PLANNED]} files {verb}, {counts[UNCHANGED]} already "
        f"hold these tags, {counts[FAILED]} cannot be written; {files['plan']}"
        + (f"; to undo: python -m tagging --undo {files['undo_log']}" if "undo_log" in files else ""))
    return {"dry_run": not write, "genre_field": genre_field, "counts": counts, "files": files}


def _score(row: dict[str, Any]) -> float:
    """The predicted genre's own score (the top of the row's top 3)."""
    return float(next((t["score"] for t in row.get("top3", []) if t["genre"] == row["genre"]),
                      row.get("scores", {}).get(row["genre"], 0.0)))


def _write_jsonl(path: str, entries: list[dict[str, Any]]) -> None:
    temp = f"{path}.tmp-{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e, sort_keys=True) + "\n" for e in entries)  # ASCII escapes: any file name, UTF-8 or not
    os.replace(temp, path)
