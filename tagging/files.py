"""List the files to tag (on the launcher) and decode them (in the workers).

Listing happens once, before the pipeline, so every runner gets the same list through
``beam.Create`` (the Dask runner cannot run Beam's file-matching sources). Decoding is
ingestion's (components/audio_example_gen: filecheck.py, ingest.py, audio.py) with its
quarantine reasons, so a file the pipeline would quarantine is quarantined here for the same
reason, and a file it would train on is tagged.
"""
from __future__ import annotations

import collections
import dataclasses
import glob as globlib
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import numpy as np

from components.audio_example_gen import filecheck, ingest
from pipeline.config import AUDIO_EXTENSIONS, AudioConfig
from pipeline.errors import UserError


@dataclasses.dataclass(frozen=True)
class Listing:
    files: list[tuple[str, str]]  # (path or URI as listed, path relative to the root)
    ignored: list[str]            # not an audio extension


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def list_audio(spec: str) -> Listing:
    """Every file under the folder ``spec`` (recursively), or matching the glob ``spec``."""
    from tfx.dsl.io import fileio  # local, gs://, s3:// ... as TFX reads them

    if _is_glob(spec):
        root = spec.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
        found = [p for p in (fileio.glob(spec) if "://" in spec else globlib.glob(spec, recursive=True))
                 if not fileio.isdir(p)]
    else:
        if not fileio.exists(spec):
            raise UserError(f"Nothing to tag: {spec} does not exist.", where="tagging ROOT",
                            fix="pass a folder of audio files or a glob such as 'music/**/*.flac' (quoted).")
        if not fileio.isdir(spec):
            return _sorted([spec], os.path.dirname(spec))
        root = spec
        found = [os.path.join(d, name) for d, _, names in fileio.walk(spec) for name in names]
    return _sorted(found, root)


def _sorted(paths: list[str], root: str) -> Listing:
    files, ignored = [], []
    root = root.rstrip("/")
    for path in sorted(set(paths)):
        rel = path[len(root) + 1:] if root and path.startswith(root + "/") else path
        ext = posixpath.splitext(path)[1].lstrip(".").lower()
        (files.append((path, rel)) if ext in AUDIO_EXTENSIONS else ignored.append(rel))
    return Listing(files=files, ignored=ignored)


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """Consecutive groups of ``size``: one Beam element (one RunInference batch) per group."""
    return [items[i:i + size] for i in range(0, len(items), max(1, size))]


def decode_file(path: str, rel_path: str, audio: AudioConfig) -> dict[str, Any]:
    """A clip dict (``waveform`` float32 in [-1, 1] at ``audio.sample_rate``) or a quarantine dict.

    Ingestion's steps and reasons, one implementation: filecheck.check (links, folders, FIFOs,
    permissions) before opening, then ingest.read_audio (header checks, bounded decode, too
    short, silent, and any read error or other exception as that file's reason).
    """
    problem = filecheck.check(path)
    if problem is None:
        decoded = ingest.read_audio(path, audio)
        problem = decoded if isinstance(decoded, filecheck.Problem) else None
    if problem is not None:
        return {"path": rel_path, "reason": problem.reason, "detail": problem.detail}
    samples = decoded.samples
    # int16 -> [-1, 1) exactly as tf.audio.decode_wav does (docs/contracts.md, quantisation).
    waveform = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
    return {"path": rel_path, "waveform": np.ascontiguousarray(waveform, dtype=np.float32),
            "sample_rate": audio.sample_rate, "seconds": round(len(samples) / audio.sample_rate, 3)}


def decode_ahead(chunk: Sequence[Sequence[str]], audio: AudioConfig, depth: int = 2) -> Iterator[dict[str, Any]]:
    """The chunk's ``(path, rel_path)`` files decoded in order, by a background thread ``depth`` files ahead.

    Why: the consumer runs TensorFlow on each clip while the next files decode. libsndfile, soxr
    and numpy release the GIL, so decoding (a quarter of the CPU per GTZAN clip, BENCHMARKS.md)
    runs on the core TensorFlow leaves idle instead of between two model calls.
    """
    if depth < 1 or len(chunk) < 2:
        yield from (decode_file(path, rel, audio) for path, rel in chunk)
        return
    todo = iter(chunk)
    with ThreadPoolExecutor(1, thread_name_prefix="tagging-decode") as pool:
        pending = collections.deque(pool.submit(decode_file, path, rel, audio)
                                    for path, rel in (next(todo) for _ in range(min(depth, len(chunk)))))
        while pending:
            clip = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(decode_file, following[0], following[1], audio))
            yield clip
