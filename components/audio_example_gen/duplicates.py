"""Duplicate audio by content: identical decoded samples (hashed with rate and channels) are one track, whatever
the names. Copies in train and test would inflate the held-out figure, so of each group the first in sorted order
is kept and the others are quarantined ``duplicate_audio``. Links are caught by inode, and only files whose first
HEAD_SECONDS match are decoded whole; re-encoded, trimmed or gain-changed copies are not caught."""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Optional, Sequence

import numpy as np
import soundfile as sf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from audio import decode as audio_lib
from audio import filecheck
HEAD_SECONDS = 1.0
_BLOCK = audio_lib.BLOCK_FRAMES


def _read_pcm(path: str, head_only: bool, max_seconds: float) -> Optional[str]:
    """Hex SHA-256 of rate, channels, frame count (head only) and samples (the first HEAD_SECONDS, or all); None
    when the file cannot be read or is outside ingestion's header limits (the decoder quarantines it)."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f, sf.SoundFile(f) as sound:
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
            if not (audio_lib.MIN_RATE <= rate <= audio_lib.MAX_RATE and 1 <= channels <= audio_lib.MAX_CHANNELS):
                return None
            digest = hashlib.sha256(f"{rate}:{channels}:{frames if head_only else ''}".encode())
            cap = int(max_seconds * rate) + 1 if math.isfinite(max_seconds) else frames + 1
            todo = int(HEAD_SECONDS * rate) if head_only else cap
            while todo > 0:
                # float64 holds every PCM sample (8 to 32 bit) and every float sample exactly; reading
                # float files as int would round them to 0 and +-1 (libsndfile does not scale them).
                block = sound.read(min(_BLOCK, todo), dtype="float64", always_2d=True)
                if not len(block):
                    return digest.hexdigest()
                digest.update(np.ascontiguousarray(block).tobytes())
                todo -= len(block)
            return digest.hexdigest() if head_only else None  # longer than the cap: too_long when decoded
    except Exception:  # noqa: BLE001 - an unreadable file is quarantined by the decoder with its reason
        return None


def _inode(path: str) -> Optional[tuple[int, int]]:
    with contextlib.suppress(OSError):
        if filecheck.is_local(path):
            st = os.stat(path)
            return st.st_dev, st.st_ino
    return None


def _keys(paths: Sequence[str], key, workers: int) -> dict[str, Optional[str]]:
    with ThreadPoolExecutor(max(1, workers)) as pool:  # libsndfile releases the GIL while it decodes
        return dict(zip(paths, pool.map(key, paths)))


def _alike(keys: dict[str, Optional[str]]) -> list[list[str]]:
    """Paths that share a key, in groups of two or more."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path, k in keys.items():
        if k is not None:
            groups[k].append(path)
    return [group for group in groups.values() if len(group) > 1]


def find(files: Iterable[tuple[str, str]], max_seconds: float = float("inf"),
         workers: Optional[int] = None, heads: Optional[dict[str, Optional[str]]] = None) -> dict[str, str]:
    """``{rel_path: rel_path of the kept copy}`` for every duplicate among ``(path, rel_path)`` pairs. ``heads``
    (path -> digest of the first HEAD_SECONDS) holds what an earlier run read, which is not read again, and gets
    what this run reads."""
    heads = {} if heads is None else heads
    rel_of = dict(files)
    ordered = sorted(rel_of, key=lambda p: rel_of[p])
    workers = workers or os.cpu_count() or 1
    duplicates: dict[str, str] = {}
    first_of: dict = {}  # inode (a remote file: its path) -> the first path seen
    for path in ordered:
        first = first_of.setdefault(_inode(path) or path, path)
        if first != path:
            duplicates[rel_of[path]] = rel_of[first]
    unread = [p for p in first_of.values() if p not in heads]
    heads.update(_keys(unread, lambda p: _read_pcm(p, True, max_seconds), workers))
    suspects = [p for group in _alike({p: heads[p] for p in first_of.values()}) for p in group]
    for group in _alike(_keys(suspects, lambda p: _read_pcm(p, False, max_seconds), workers)):
        kept, *copies = sorted(group, key=lambda p: rel_of[p])
        duplicates.update((rel_of[c], rel_of[kept]) for c in copies)
    return duplicates
