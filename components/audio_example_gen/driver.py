"""AudioExampleGen's driver: TFX's file-based driver with an input fingerprint that cannot crash.

TFX's stats every match of a one-level glob, so one dangling or looping link ended the run before the executor
could quarantine it. This one walks the whole root as ingestion does, counts what it cannot stat, and adds a digest
of the paths (a file moved to another genre folder changes its label). Kubeflow V2 runs TFX's own driver."""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Iterable, Optional
from unittest import mock

from absl import logging
from tfx.components.example_gen import driver as tfx_driver
from tfx.components.example_gen import input_processor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.utils import io_utils

from audio import discovery

_NANO_PER_SEC = 10**9


def fingerprint(split_name: str, pattern: str, input_base: str) -> str:
    """TFX's fingerprint fields for every entry discovery walks under ``input_base``, never raising on one."""
    files = [e.path for e in discovery.walk(input_base)]
    total_bytes = xor_checksum = sum_checksum = 0
    names = hashlib.sha256()  # of the paths relative to input_base: moving the root is not a change
    unstatable = 0
    for path in files:
        names.update(os.path.relpath(path, input_base).encode() + b"\0")
        try:
            stat = fileio.stat(path)
        except Exception as e:  # noqa: BLE001 - NotFoundError, ELOOP, permission...: listed, not fatal
            unstatable += 1
            names.update(f"unstatable:{type(e).__name__}\0".encode())
            continue
        total_bytes += stat.length
        mtime = int(stat.mtime_nsec / _NANO_PER_SEC)  # second granularity, as TFX
        xor_checksum ^= mtime
        sum_checksum += mtime
    if unstatable:
        logging.warning("AudioExampleGen driver: %d entries matching %s cannot be stat'ed (broken or looping "
                        "links?); the executor quarantines them.", unstatable, pattern)
    return (f"split:{split_name},num_files:{len(files)},total_bytes:{total_bytes},xor_checksum:{xor_checksum},"
            f"sum_checksum:{sum_checksum},unstatable:{unstatable},names_sha256:{names.hexdigest()[:16]}")


class TolerantInputProcessor(input_processor.FileBasedInputProcessor):
    """FileBasedInputProcessor whose fingerprint is :func:`fingerprint`; span and version resolve as in TFX."""

    def resolve_span_and_version(self) -> tuple[int, Optional[int]]:
        # TFX's resolution fingerprints each split with io_utils.generate_fingerprint: ours stands in for the call.
        tolerant = functools.partial(fingerprint, input_base=self._input_base_uri)
        with mock.patch.object(io_utils, "generate_fingerprint", tolerant):
            return super().resolve_span_and_version()


class AudioDriver(tfx_driver.FileBasedDriver):
    """FileBasedDriver with :class:`TolerantInputProcessor`."""

    def get_input_processor(self, splits: Iterable[example_gen_pb2.Input.Split],
                            range_config: Optional[range_config_pb2.RangeConfig] = None,
                            input_base_uri: Optional[str] = None) -> input_processor.InputProcessor:
        assert input_base_uri
        return TolerantInputProcessor(input_base_uri, splits, range_config)
