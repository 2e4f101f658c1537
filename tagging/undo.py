"""The undo log of tag writing, and ``python -m tagging --undo LOG``, which restores each file byte for byte.

Before a tagged copy replaces a file, its original bytes go to ``undo/<sha256>`` and a fsynced JSON line to
the log (a crash before the replace leaves a line undo recognises). Undo walks the log backwards and restores
a file atomically only while it holds the bytes the log says were written: other changes are not ours.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from typing import Any, Callable, Iterator

UNDO_LOG, UNDO_DIR = "write_undo.jsonl", "undo"
TEMP_MARK = ".tagging-"  # temporary copies are ``.<name>.tagging-<pid>-<random><ext>``: hidden, never listed
CHUNK = 1 << 20


def copy_synced(src: str, dst: str) -> str:
    """Copy ``src`` to a new file ``dst``, fsync it, and return the sha256 of the bytes copied."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while block := fin.read(CHUNK):
            digest.update(block)
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest()


def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def keep_backup(path: str, sha256: str, undo_dir: str) -> str:
    """The original's bytes in ``undo_dir/<sha256>`` (copied once, fsynced, checked); returns that path."""
    os.makedirs(undo_dir, exist_ok=True)
    backup = os.path.join(undo_dir, sha256)
    if os.path.exists(backup) and sha256_of(backup) == sha256:
        return backup
    with temp_beside(backup) as temp:
        copied = copy_synced(path, temp)
        if copied != sha256:
            raise OSError(f"{path} changed while its backup was copied (sha256 {copied[:12]}, not {sha256[:12]})")
        os.rename(temp, backup)
    fsync_dir(undo_dir)
    return backup


def append_record(log_path: str, path: str, backup: str, before: str, after: str, st: os.stat_result) -> None:
    """The undo line for one file, flushed and fsynced before the caller replaces it (``backup`` relative to the
    log's folder, so the output folder can move)."""
    folder = os.path.dirname(os.path.abspath(log_path))
    record = {"path": os.path.abspath(path), "backup": os.path.relpath(backup, folder), "sha256_before": before,
              "sha256_after": after, "mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid,
              "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns,
              "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def restore(log_path: str, log: Callable[[str], None] = print) -> dict[str, list[dict[str, str]]]:
    """Put back every file the log names, newest line first; returns (and logs) each outcome: ``restored``
    (sha256 checked), ``already_original`` or ``skipped`` (with the reason)."""
    base = os.path.dirname(os.path.abspath(log_path))
    with open(log_path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    report: dict[str, list[dict[str, str]]] = {"restored": [], "already_original": [], "skipped": []}
    for entry in reversed(lines):
        try:
            outcome, detail = _restore_one(entry, base)
        except OSError as err:  # e.g. its folder is read-only now: this file stays, the others are restored
            outcome, detail = "skipped", f"{type(err).__name__}: {err}"
        report[outcome].append({"path": entry["path"], "detail": detail})
        log(f"[undo] {outcome.replace('_', ' ')}: {entry['path']}" + (f" ({detail})" if detail else ""))
    log(f"[undo] {len(report['restored'])} restored, {len(report['already_original'])} already original, "
        f"{len(report['skipped'])} skipped, from {log_path}")
    return report


def _restore_one(entry: dict[str, Any], base: str) -> tuple[str, str]:
    path, backup = entry["path"], os.path.join(base, entry["backup"])
    if not os.path.isfile(path):
        return "skipped", "the file is gone; its original bytes are in " + backup
    current = sha256_of(path)
    if current == entry["sha256_before"]:
        return "already_original", ""
    if current != entry["sha256_after"]:
        return "skipped", (f"changed since it was tagged (sha256 {current[:12]}); its original bytes are in {backup}")
    if not os.path.isfile(backup) or sha256_of(backup) != entry["sha256_before"]:
        return "skipped", f"the backup {backup} is missing or damaged"
    with temp_beside(path) as temp:
        if copy_synced(backup, temp) != entry["sha256_before"]:
            raise OSError(f"{backup} changed while it was copied")
        os.chmod(temp, entry["mode"])
        if "uid" in entry:  # the bytes, mode and times are the original's; the owner may stay ours
            chown_if_allowed(temp, entry["uid"], entry["gid"])
        os.utime(temp, ns=(entry["atime_ns"], entry["mtime_ns"]))
        os.replace(temp, path)
    fsync_dir(os.path.dirname(path))
    if sha256_of(path) != entry["sha256_before"]:
        return "skipped", "restored bytes do not match the log's sha256"
    return "restored", ""


def chown_if_allowed(path: str, uid: int, gid: int) -> None:
    """Give ``path`` that owner where it is not ours and we may (root may; others keep the file as theirs)."""
    if (uid, gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(PermissionError):
            os.chown(path, uid, gid)


@contextlib.contextmanager
def temp_beside(path: str) -> Iterator[str]:
    """A hidden name beside ``path`` (same extension) for a copy that replaces it; removed if still there."""
    folder, name = os.path.split(path)
    ext = os.path.splitext(name)[1]
    temp = os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}{ext}")
    try:
        yield temp
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def remove_stale_temps(path: str) -> None:
    """Remove the temporary copies of ``path`` a writer that no longer runs left (killed between copy and rename);
    a read-only folder keeps them (hidden, they are never listed as audio)."""
    folder, name = os.path.split(path)
    if "://" in path or not os.path.isdir(folder or "."):
        return
    prefix = f".{name}{TEMP_MARK}"
    for entry in os.listdir(folder or "."):
        pid = entry[len(prefix):].split("-", 1)[0]
        if entry.startswith(prefix) and (not pid.isdigit() or not _alive(int(pid))):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    return True
