"""One extended M3U playlist per predicted genre: ``playlists/<genre>.m3u8`` in the output folder.

``.m3u8`` tells a player the list is UTF-8; paths are absolute because the output folder and the library
usually live apart (remote files stay URIs); files are in path order, an album's tracks together.
"""
from __future__ import annotations

import itertools
import os
import re
from typing import Any, Callable, Iterable

PLAYLIST_DIR, EXTENSION = "playlists", ".m3u8"


def _seconds(path: str, decoded: float) -> int:
    if "://" not in path:
        try:
            import mutagen
            audio = mutagen.File(path)
            if audio is not None and getattr(audio.info, "length", 0):
                return int(round(audio.info.length))
        except Exception:  # the decoded length is a fine stand-in
            pass
    return int(round(decoded)) if decoded else -1


def write(rows: Iterable[dict[str, Any]], path_of: Callable[[str], str], out_dir: str) -> dict[str, str]:
    """Write one playlist per genre of the tagged ``rows``; returns genre -> playlist path."""
    groups = itertools.groupby(sorted(rows, key=lambda r: (r["genre"], r["path"])), key=lambda r: r["genre"])
    folder = os.path.join(out_dir, PLAYLIST_DIR)
    os.makedirs(folder, exist_ok=True)
    written = {}
    for genre, members in groups:
        lines = ["#EXTM3U", f"#PLAYLIST:{genre}"]
        for row in members:
            path = path_of(row["path"])
            location = path if "://" in path else os.path.abspath(path)
            if "\n" in location or "\r" in location:  # one line per entry: such a name cannot be listed
                continue
            title = os.path.splitext(os.path.basename(row["path"]))[0]
            if "length" not in row:  # kept in the row (tags.jsonl), so a re-run does not open the file again
                row["length"] = _seconds(location, row.get("seconds", 0))
            lines += [f"#EXTINF:{row['length']},{title}", location]
        # a file name on every file system: no separators, no control or reserved characters
        name = re.sub(r'[\x00-\x1f/\\:*?"<>|]+', "_", genre).strip(" .") or "_"
        target = os.path.join(folder, name + EXTENSION)
        temp = f"{target}.tmp-{os.getpid()}"
        # surrogateescape: a file name that is not UTF-8 is written as its own bytes, the path the player opens
        with open(temp, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(temp, target)
        written[genre] = target
    for old in os.listdir(folder):  # a genre no file has any more keeps no playlist from an earlier run
        if old.endswith(EXTENSION) and os.path.join(folder, old) not in written.values():
            os.remove(os.path.join(folder, old))
    return written
