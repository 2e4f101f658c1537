"""AnomalyGate executor: raise on any anomaly in any split."""
from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from config.errors import UserError

ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(UserError):
    """The data does not match the curated schema; nothing may train on it."""


def read_split_anomalies(artifact: types.Artifact) -> dict[str, list[str]]:
    """Split -> one line per anomaly (feature, or ``<dataset>``), for the splits that have any."""
    found: dict[str, list[str]] = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies.FromString(tf.io.gfile.GFile(path, "rb").read())
        infos = sorted(anomalies.anomaly_info.items())
        if anomalies.HasField("dataset_anomaly_info"):
            infos.append(("<dataset>", anomalies.dataset_anomaly_info))
        lines = [f"{feature}: {info.short_description} ({info.description})" for feature, info in infos]
        if lines:
            found[split] = lines
    return found


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        artifact = artifact_utils.get_single_instance(input_dict["anomalies"])
        found = read_split_anomalies(artifact)
        if found:
            report = "\n".join(f"  [{split}] {line}" for split, lines in found.items() for line in lines)
            raise DataAnomaliesError(
                "Data validation failed; the run stops before Transform and training.\n" + report,
                where=f"anomalies: {artifact.uri}",
                fix="fix the data, or, if the change is intended, the curated schema under schemas/, and re-run")
