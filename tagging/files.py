"""List the files to tag (on the launcher) and decode them (in the workers), exactly as ingestion does.

Listing happens once, before the pipeline, so every runner gets the same list through ``beam.Create`` (the
Dask runner cannot run Beam's file-matching sources).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import glob as globlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import numpy as np

from audio import discovery, filecheck
from components.audio_example_gen import ingest
from config.errors import UserError
from config.settings import AudioConfig
from tagging import write_back


@dataclasses.dataclass(frozen=True)
class Listing:
    files: list[tuple[str, str]]             # to decode: (path or URI as listed, path relative to the root)
    excluded: list[dict[str, str]] = dataclasses.field(default_factory=list)     # path, reason, detail
    quarantined: list[dict[str, str]] = dataclasses.field(default_factory=list)  # not a readable file

    @property
    def ignored(self) -> list[str]:
        """Files without an audio extension (summary.json ``ignored_files``)."""
        return [e["path"] for e in self.excluded if e["reason"] == discovery.NOT_AUDIO_EXTENSION]


def list_audio(spec: str) -> Listing:
    """Every entry under the folder ``spec`` (recursively, ingestion's discovery rule), or matching the glob."""
    if "://" in spec:  # gs://, s3:// ... as TFX reads them; a local library needs no TensorFlow to list
        from tfx.dsl.io import fileio
        glob, exists, isdir = fileio.glob, fileio.exists, fileio.isdir
    else:
        glob, exists, isdir = functools.partial(globlib.glob, recursive=True), os.path.exists, os.path.isdir
    if any(c in spec for c in "*?["):  # a glob
        root = spec.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
        found = [p for p in glob(spec) if not isdir(p)]
        return _listing([discovery.entry(p, _relative(p, root)) for p in sorted(set(found))])
    if not exists(spec) and not os.path.islink(spec):
        raise UserError(f"Nothing to tag: {spec} does not exist.", where="tagging ROOT",
                        fix="pass a folder of audio files or a glob such as 'music/**/*.flac' (quoted).")
    if not isdir(spec):
        return _listing([discovery.entry(spec, os.path.basename(spec))])
    return _listing(discovery.walk(spec))


def _relative(path: str, root: str) -> str:
    root = root.rstrip("/")
    return path[len(root) + 1:] if root and path.startswith(root + "/") else path


def _listing(entries: list[discovery.Entry]) -> Listing:
    """Candidates to decode; entries that are not readable files quarantined (never opened); the rest excluded."""
    return Listing(files=[(e.path, e.rel_path) for e in entries if e.excluded is None and e.problem is None],
                   excluded=[{"path": e.rel_path, "reason": e.excluded.reason, "detail": e.excluded.detail}
                             for e in entries if e.excluded is not None],
                   quarantined=[{"path": e.rel_path, "reason": e.problem.reason, "detail": e.problem.detail}
                                for e in entries if e.excluded is None and e.problem is not None])


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """Consecutive groups of ``size``: one Beam element (one RunInference batch) per group."""
    return [items[i:i + size] for i in range(0, len(items), max(1, size))]


def decode_file(path: str, rel_path: str, audio: AudioConfig, audio_hash: bool = False) -> dict[str, Any]:
    """A clip dict (``waveform`` float32 at ``audio.sample_rate``; with ``audio_hash`` its ``audio_sha256``, which
    finds the file again once moved or re-tagged) or a quarantine dict, with ingestion's reasons."""
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
            "sample_rate": audio.sample_rate, "seconds": round(len(samples) / audio.sample_rate, 3),
            **({"audio_sha256": write_back.audio_hash(path)} if audio_hash else {})}


def decode_ahead(chunk: Sequence[Sequence[str]], audio: AudioConfig, depth: int = 2) -> Iterator[dict[str, Any]]:
    """The chunk's files decoded in order by a background thread ``depth`` files ahead: the decoders release the
    GIL, so decoding runs on the core TensorFlow leaves idle, not between model calls."""
    with ThreadPoolExecutor(1, thread_name_prefix="tagging-decode") as pool:
        pending: collections.deque = collections.deque()
        for path, rel in chunk:
            pending.append(pool.submit(decode_file, path, rel, audio, True))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
