"""The raw-data schema ImportSchemaGen imports: it follows the configured label set.

The curated schemas pin the genres to GTZAN's ten; for another label set a schema with those two domains replaced
is written under the pipeline root at a path that depends only on its content, so ImportSchemaGen's cache holds."""
from __future__ import annotations

import hashlib
import os
import uuid

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from config.settings import PipelineConfig

SCHEMA_FILE = "schema.pbtxt"
GENRE_DOMAIN = "genre"
LABEL_FEATURE = "label"


def curated_schema_path(config: PipelineConfig) -> str:
    """The curated file on this machine (a ClusterConfig's schema_dir names the image's copy instead)."""
    return os.path.join(PipelineConfig.schema_dir.fget(config), SCHEMA_FILE)


def _label_set(schema: schema_pb2.Schema) -> tuple[schema_pb2.StringDomain, schema_pb2.IntDomain]:
    """The schema's genre domain and the label feature's integer domain."""
    return (next(d for d in schema.string_domain if d.name == GENRE_DOMAIN),
            next(f for f in schema.feature if f.name == LABEL_FEATURE).int_domain)


def label_set_of(schema: schema_pb2.Schema) -> tuple[tuple[str, ...], int, int]:
    """(genre strings, label min, label max) a schema admits."""
    domain, label = _label_set(schema)
    return tuple(domain.value), label.min, label.max


def schema_file(config: PipelineConfig) -> str:
    """The schema file for ImportSchemaGen: the curated one when it already admits ``config.genres``,
    else a derived one at ``<pipeline_root>/schemas/<content hash>/schema.pbtxt``, written once."""
    curated_path = curated_schema_path(config)
    with open(curated_path) as f:
        curated_text = f.read()
    curated = text_format.Parse(curated_text, schema_pb2.Schema())
    genres = tuple(config.genres)
    if label_set_of(curated) == (genres, 0, len(genres) - 1):
        return os.path.join(config.schema_dir, SCHEMA_FILE)
    derived = text_format.Parse(curated_text, schema_pb2.Schema())  # genre domain and label range replaced
    domain, label = _label_set(derived)
    del domain.value[:]
    domain.value.extend(genres)
    label.min, label.max = 0, len(genres) - 1
    relative = os.path.relpath(curated_path, os.path.dirname(os.path.dirname(os.path.dirname(curated_path))))
    text = (f"# Derived by pipeline/schema.py from {relative.replace(os.sep, '/')} for the label set\n"
            f"# {', '.join(genres)}: only the genre domain and the label range differ. Not to be edited.\n"
            + text_format.MessageToString(derived))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = "/".join([config.pipeline_root.rstrip("/"), "schemas", digest, SCHEMA_FILE])
    from tfx.dsl.io import fileio
    if not fileio.exists(path):
        # Under a unique temporary name, then renamed: a reader (or a concurrent run) never sees half a schema.
        fileio.makedirs(os.path.dirname(path))
        tmp = os.path.join(os.path.dirname(path), f".{SCHEMA_FILE}.{uuid.uuid4().hex}.tmp")
        try:
            with fileio.open(tmp, "w") as f:
                f.write(text)
            fileio.rename(tmp, path, overwrite=True)
        finally:
            if fileio.exists(tmp):
                fileio.remove(tmp)
    return path
