"""Small inputs run in the launching process: the DirectRunner's workers each start Python and import TensorFlow
(TFDV, TFT, TFMA) first, seconds that a small span's whole work does not take; large inputs keep the configured
processes. The Beam executors call :func:`beam_args_for` with the bytes they are about to read."""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.types import artifact_utils, standard_component_specs

# Below this many input bytes a Beam executor runs in-process; above it the workers' start-up pays for itself.
IN_PROCESS_BELOW_BYTES = 64 << 20


def beam_args_for(args: Sequence[str], input_bytes: int) -> list[str]:
    """``args`` with in-process DirectRunner settings when ``input_bytes`` is small and the DirectRunner's worker
    count is left to it (``--direct_num_workers=0``, the pipeline's default); a count or runner asked for stays."""
    runner = next((a.split("=", 1)[1] for a in reversed(args) if a.startswith("--runner=")), "DirectRunner")
    direct_auto = runner.rsplit(".", 1)[-1] == "DirectRunner" and "--direct_num_workers=0" in args
    if input_bytes >= IN_PROCESS_BELOW_BYTES or not direct_auto:
        return list(args)
    logging.info("Beam runs in-process: %.1f MiB of input.", input_bytes / 2**20)
    return [a for a in args if not a.startswith(("--direct_running_mode", "--direct_num_workers"))] + [
        "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def split_bytes(uris: Iterable[str], splits: Sequence[str]) -> int:
    """Bytes of the files of ``splits`` in the Examples at ``uris`` (a split one lacks counts nothing)."""
    return sum(tf.io.gfile.stat(path).length for uri in uris for split in splits
               for path in tf.io.gfile.glob(os.path.join(uri, f"Split-{split}", "*")))


class StatisticsGenExecutor(statistics_executor.Executor):
    """TFX's StatisticsGen executor, in-process for a small span."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        splits = {s for e in examples for s in artifact_utils.decode_split_names(e.split_names)} - set(
            json.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY) or "[]"))
        read = split_bytes([e.uri for e in examples], sorted(splits))
        self._beam_pipeline_args = beam_args_for(self._beam_pipeline_args, read)
        super().Do(input_dict, output_dict, exec_properties)
