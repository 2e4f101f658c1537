"""The pipeline configuration as the Kubeflow image and the cluster see it.

The config is baked into the compiled spec and no local path exists inside a pod, so every path is replaced here:
remote pipeline and data roots, a shared MLflow server, the cluster's MLMD, the curated schema from the image. A
local path where a remote URI is needed is an error: the run would only fail later, inside a pod, less clearly.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from typing import Optional

from config.settings import PROJECT_ROOT, PathsConfig, PipelineConfig

# Where kubeflow/Dockerfile copies the project (WORKDIR and PYTHONPATH of the image).
IMAGE_PROJECT_ROOT = "/pipeline"
# Storage every pod can reach and this stack can read. TensorFlow 2.21 itself only has gs://;
# s3://, hdfs:// and az:// come from tensorflow-io's filesystem plugins, which do not load
# with TF 2.21 (tensorflow/io#2104). Anything without a scheme, or file://, is on this machine.
REMOTE_SCHEMES = ("gs",)
# MLflow backends a pod can share with the next run: a tracking server or a database.
MLFLOW_SCHEMES = ("http", "https", "databricks", "postgresql", "mysql", "mssql")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class LocalPathError(ValueError):
    """A local path was given where every pod needs to reach the location."""


def uri_scheme(uri: str) -> Optional[str]:
    """``gs`` for ``gs://b/x``; ``postgresql`` for ``postgresql+psycopg2://...``; None for a path."""
    match = _SCHEME.match(uri)
    return match.group(1).split("+")[0].lower() if match else None


def require_remote(flag: str, value: str) -> str:
    """``value`` without a trailing slash, or LocalPathError naming the flag."""
    if uri_scheme(value) not in REMOTE_SCHEMES:
        raise LocalPathError(
            f"{flag} {value!r} is not a remote URI. On Kubeflow every step runs in its own pod, "
            f"which cannot see this machine's files: use {' or '.join(s + '://BUCKET/...' for s in REMOTE_SCHEMES)}.")
    return value.rstrip("/")


def require_mlflow_server(value: Optional[str]) -> str:
    if not value:
        raise LocalPathError(
            "--mlflow-uri is required on Kubeflow: the local default (a SQLite file under the pipeline "
            "root) cannot work there, because each step runs in its own pod and MLflow cannot keep its "
            "store on gs://. Pass a tracking server, e.g. "
            "--mlflow-uri http://mlflow.mlflow.svc.cluster.local:5000, or a database URI.")
    if uri_scheme(value) not in MLFLOW_SCHEMES:
        raise LocalPathError(
            f"--mlflow-uri {value!r} is not reachable from every pod; use a tracking server or database "
            f"URI ({', '.join(s + '://' for s in MLFLOW_SCHEMES)}).")
    return value


class ClusterConfig(PipelineConfig):
    """PipelineConfig (same fields and JSON) whose curated schema, read by path at run time, is the image's."""

    @property
    def schema_dir(self) -> str:
        local = super().schema_dir  # fails early, here, when no curated schema matches
        return posixpath.join(IMAGE_PROJECT_ROOT, os.path.relpath(local, PROJECT_ROOT).replace(os.sep, "/"))


def cluster_config(config: PipelineConfig, *, pipeline_root: Optional[str], data_root: Optional[str],
                   serving_dir: Optional[str], mlflow_uri: Optional[str]) -> ClusterConfig:
    """``config`` with every path replaced by one a pod can reach; LocalPathError otherwise."""
    if not pipeline_root:
        raise LocalPathError("--pipeline-root is required on Kubeflow (e.g. gs://BUCKET/genre-pipeline): "
                             "it holds every artifact and is shared by all pods.")
    if not data_root:
        raise LocalPathError("--data-root is required on Kubeflow (e.g. gs://BUCKET/gtzan). The synthetic set is "
                             "not generated on the cluster: write it with `python -m synthetic --out DIR` and "
                             "upload it (`gsutil -m cp -r DIR gs://BUCKET/synthetic`).")
    root = require_remote("--pipeline-root", pipeline_root)
    paths = PathsConfig(
        data_root=require_remote("--data-root", data_root), output_dir=root, pipeline_root=root,
        metadata_path="",  # the cluster's MLMD; nothing to configure
        serving_dir=require_remote("--serving-dir", serving_dir) if serving_dir else f"{root}/serving/genre",
        mlflow_tracking_uri=require_mlflow_server(mlflow_uri))
    split = config.split
    if split.split_dir:
        split = dataclasses.replace(split, split_dir=require_remote("--split-dir", split.split_dir))
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return ClusterConfig(**{**values, "paths": paths, "split": split})
