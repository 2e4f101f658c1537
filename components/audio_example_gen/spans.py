"""Spans: a library that grows is ingested by what changed, each change a new span of the Examples.

The newest Examples artifact describes the live data: ``files.jsonl`` indexes every entry of the root with its fate
and, for an ingested track, its span, split, size, modification time and sha256; ``spans.json`` names the span and
the URI of every span live records sit in. Artifacts never change, so the records of a removed or changed file stay
in their span, unnamed by the index and skipped by readers (``Chain.dropped``); the run that retires them copies
their train records, marked ``tombstone``, into its ``retired`` split, which Transform's analyzers subtract
(models/preprocessing.py). A pointer file beside the component's outputs names the newest complete artifact. No
TensorFlow here: the launcher and Beam workers import it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Iterable, Iterator, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.audio_example_gen import segments

SPANS_FILE = "spans.json"
INDEX_FILE = "files.jsonl"
POINTER_FILE = "latest_span.json"
RETIRED = "retired"  # the split of tombstones: train records of tracks this span retires
TOMBSTONE = "tombstone"
_TRACK_ID_KEY = b"\n\x08track_id\x12"  # a feature map entry's key field (1, "track_id"), then its value field (2)
# A chain of more spans is rebuilt in one: every span is a dataset Transform reads and caches.
MAX_SPANS = 64
NEW, CHANGED, MOVED_OR_REMOVED, UNCHANGED = "new", "changed", "removed", "unchanged"


@dataclasses.dataclass(frozen=True)
class Chain:
    """This artifact's span and the URI of every span its live records sit in (itself included)."""

    span: int
    uris: dict[int, str]
    key: str = ""  # what the spans were ingested with (settings, code, root): a change rebuilds
    retired: dict[int, dict[str, list[str]]] = dataclasses.field(default_factory=dict)  # span -> split -> ids

    def dropped(self, span: int, split: str) -> frozenset[str]:
        """The tracks whose records in ``span``'s ``split`` are no longer live."""
        return frozenset(self.retired.get(span, {}).get(split, ()))

    def retiring(self, records: Iterable[dict[str, Any]]) -> "Chain":
        """This chain with ``records`` (earlier index records of tracks no longer live) retired too."""
        retired = {span: {split: list(ids) for split, ids in by_split.items()}
                   for span, by_split in self.retired.items()}
        for r in records:
            retired.setdefault(r["span"], {}).setdefault(r["split"], []).append(r["track_id"])
        return dataclasses.replace(self, retired=retired)


def read_chain(examples_uri: str) -> Chain:
    """The chain an Examples artifact belongs to; one written without spans.json is a span of its own."""
    path = os.path.join(examples_uri, SPANS_FILE)
    if not FileSystems.exists(path):
        return Chain(0, {0: examples_uri})
    data = json.loads(_read(path))
    return Chain(data["span"], {int(k): v for k, v in data["spans"].items()}, data.get("key", ""),
                 {int(k): v for k, v in data.get("retired", {}).items()})


def _read(path: str) -> str:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read().decode()


def _write(path: str, text: str) -> None:
    """Write ``text`` whole: to a temporary name, then renamed (an object store's write is whole anyway)."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode())
    FileSystems.rename([temporary], [path])


def write_chain(examples_uri: str, chain: Chain) -> None:
    data = {"span": chain.span, "key": chain.key, "spans": {str(k): v for k, v in chain.uris.items()},
            "retired": {str(k): v for k, v in chain.retired.items()}}
    _write(os.path.join(examples_uri, SPANS_FILE), json.dumps(data, sort_keys=True) + "\n")


def ingestion_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _pointer(component_dir: str) -> dict[str, Any]:
    path = os.path.join(component_dir, POINTER_FILE)
    return json.loads(_read(path)) if FileSystems.exists(path) else {}


def last_span(component_dir: str) -> int:
    """The highest span number the component has written (0 before the first): numbers are never reused."""
    return int(_pointer(component_dir).get("span", 0))


def latest_chain(component_dir: str) -> Optional[Chain]:
    """The chain of the component's newest complete artifact; None before one, after :func:`forget`, or once gone."""
    uri = _pointer(component_dir).get("uri")
    return read_chain(uri) if uri and FileSystems.exists(os.path.join(uri, SPANS_FILE)) else None


def rebuild_reason(latest: Optional[Chain], key: str) -> str:
    """Why this run cannot build on ``latest`` and ingests everything; "" when it can."""
    if latest is None:
        return "no earlier ingestion in this output folder"
    if latest.key != key:
        return "the ingestion settings, their code or the data root changed"
    if len(latest.uris) >= MAX_SPANS:
        return f"the data sits in {len(latest.uris)} spans, the most one chain keeps ({MAX_SPANS})"
    return ""


def point_to(component_dir: str, examples_uri: str, span: int) -> None:
    """Make ``examples_uri`` the artifact the next run builds on (after its run has passed every check)."""
    if not FileSystems.exists(component_dir):
        FileSystems.mkdirs(component_dir)
    _write(os.path.join(component_dir, POINTER_FILE), json.dumps({"uri": examples_uri, "span": span}) + "\n")


def forget(component_dir: str) -> None:
    """The next run ingests everything, as a chain of its own (its span number still the next one)."""
    pointer = _pointer(component_dir)
    if pointer:
        _write(os.path.join(component_dir, POINTER_FILE), json.dumps({"span": pointer.get("span", 0)}) + "\n")


def read_index(examples_uri: str) -> Iterator[dict[str, Any]]:
    """The track index of an artifact, one record at a time."""
    path = os.path.join(examples_uri, INDEX_FILE)
    if FileSystems.exists(path):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            yield from (json.loads(line) for line in f if line.strip())


def file_state(path: str) -> Optional[tuple[int, int]]:
    """(size, modification time in ns), or None where the file cannot be stat'ed (its fate is decided later)."""
    try:
        if "://" in path:
            meta = FileSystems.match([path])[0].metadata_list[0]
            return meta.size_in_bytes, int(meta.last_updated_in_seconds * 1e9)
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except Exception:  # noqa: BLE001 - missing, a broken link, no permission: not unchanged
        return None


def sha256_of(path: str) -> Optional[str]:
    """The file's bytes' sha256, None where it cannot be read."""
    digest = hashlib.sha256()
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except Exception:  # noqa: BLE001 - the decoder quarantines it with its reason
        return None
    return digest.hexdigest()


def unchanged(earlier: Optional[dict[str, Any]], state: Optional[tuple[int, int]], path: str) -> bool:
    """Whether a file holds what its earlier record was made from: the same size and time, or the same bytes."""
    if earlier is None or state is None or "size" not in earlier:
        return False
    if (earlier["size"], earlier["mtime_ns"]) == state:
        return True
    return bool(earlier.get("sha256")) and earlier["size"] == state[0] and sha256_of(path) == earlier["sha256"]


def track_id_of(record: bytes) -> str:
    """The ``track_id`` of a raw example as segments.make_example writes it, without TensorFlow: the last entry
    named track_id, then its Feature, BytesList and value, each a tag byte and a length."""
    at = record.rindex(_TRACK_ID_KEY) + len(_TRACK_ID_KEY)
    for _ in range(2):  # the Feature's length, the BytesList's tag and length, the value's tag
        _, at = _varint(record, at)
        at += 1
    size, at = _varint(record, at)
    return record[at:at + size].decode()


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def tombstone(record: bytes) -> bytes:
    """The record with ``tombstone`` = 1 added: a second Features message, which protobuf merges into the first."""
    return record + segments.serialize_example({TOMBSTONE: segments.int64_feature(1)})


def retired_spans(retired: Iterable[dict[str, Any]]) -> dict[int, set[str]]:
    """span -> track ids whose train records the new span retires (their tombstones)."""
    found: dict[int, set[str]] = {}
    for r in retired:
        if r.get("split") == "train":
            found.setdefault(r["span"], set()).add(r["track_id"])
    return found
