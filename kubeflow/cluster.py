"""The pipeline configuration as the Kubeflow image and the cluster see it.

The config is baked into the compiled spec and no local path exists inside a pod, so every path is replaced here:
remote pipeline and data roots, a shared MLflow server, the cluster's MLMD, the curated schema from the image. A
local path where a remote URI is needed is an error: the run would only fail later, inside a pod, less clearly.
The Beam args are checked here too (presets printed by --help); the pipeline image carries the Beam SDK harness, so
it is filled in as the SDK container of a distributed runner that needs one and was given none.
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


PRESETS: dict[str, list[str]] = {
    # Inside the component's pod, one worker process per core (the config's default).
    "direct": PipelineConfig().beam_args,
    # Google Cloud Dataflow; workers run the pipeline image (filled in when omitted).
    "dataflow": ["--runner=DataflowRunner", "--project=PROJECT", "--region=REGION",
                 "--temp_location=gs://BUCKET/beam-tmp", "--sdk_container_image=REGISTRY/genre-pipeline:TAG"],
    # Flink, workers in a Beam worker-pool sidecar of each TaskManager
    # (container: REGISTRY/genre-pipeline:TAG, args: --worker_pool).
    "flink": ["--runner=FlinkRunner", "--flink_master=FLINK_JOBMANAGER:8081",
              "--environment_type=EXTERNAL", "--environment_config=localhost:50000"],
    # Flink starting one SDK container per worker (needs Docker on the TaskManagers).
    "flink-docker": ["--runner=FlinkRunner", "--flink_master=FLINK_JOBMANAGER:8081",
                     "--environment_type=DOCKER", "--environment_config=REGISTRY/genre-pipeline:TAG"],
    # Spark through a Beam Spark job server (the portable runner).
    "spark": ["--runner=PortableRunner", "--job_endpoint=SPARK_JOB_SERVER:8099",
              "--environment_type=DOCKER", "--environment_config=REGISTRY/genre-pipeline:TAG"],
}

_REQUIRED = {"DataflowRunner": ("project", "region", "temp_location"), "FlinkRunner": ("flink_master",),
             "PortableRunner": ("job_endpoint",), "SparkRunner": ("spark_master_url",)}
_PORTABLE = ("FlinkRunner", "PortableRunner", "SparkRunner")


def presets_help() -> str:
    lines = ["Beam presets (pass each as --beam-arg=ARG; replace the CAPITALISED parts):"]
    for name, args in PRESETS.items():
        lines.append(f"  {name:13s}" + " ".join(f"--beam-arg={a}" for a in args))
    return "\n".join(lines)


def complete_beam_args(beam_args: list[str], image: str) -> tuple[list[str], list[str]]:
    """Checked Beam args with the SDK container filled in, and notes on what was added; ValueError for what cannot
    work on a cluster (no runner: Beam would pick Prism, which downloads a binary; no endpoint; a local temp path)."""
    options = {name: value for name, _, value in (arg.lstrip("-").partition("=") for arg in beam_args)}
    runner = options.get("runner")
    if not runner:
        raise ValueError("The Beam args name no runner (--beam-arg=--runner=...); Beam would pick Prism. "
                         "See the presets in --help.")
    missing = [f"--{name}" for name in _REQUIRED.get(runner, ()) if not options.get(name)]
    if missing:
        raise ValueError(f"{runner} needs {', '.join(missing)} (as --beam-arg=--NAME=VALUE); see --help.")
    for name in ("temp_location", "staging_location"):
        if options.get(name):
            require_remote(f"--beam-arg=--{name}", options[name])
    completed, notes = list(beam_args), []
    if runner == "DataflowRunner" and not options.get("sdk_container_image"):
        completed.append(f"--sdk_container_image={image}")
        notes.append(f"Dataflow workers will run the pipeline image ({image}).")
    if runner in _PORTABLE and (options.get("environment_type") or "DOCKER").upper() == "DOCKER" \
            and not options.get("environment_config"):
        if "environment_type" not in options:
            completed.append("--environment_type=DOCKER")
        completed.append(f"--environment_config={image}")
        notes.append(f"{runner} workers will start the pipeline image ({image}) as SDK container.")
    return completed, notes
