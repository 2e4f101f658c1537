"""MLflow tracking shared by the trainer, the clip gate and the model registrar: one run per trained model, opened
by the Trainer (its id on the Model artifact) and reopened by later components."""
from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import socket
from typing import Any, Iterator

import mlflow
from mlflow.tracking import MlflowClient

from config.settings import PipelineConfig

RUN_ID_PROPERTY = "mlflow_run_id"
RUN_ID_FILE = "mlflow_run_id.txt"
REGISTERED_MODEL = "genre-classifier"
# Tags naming the process that owns a run, so runs left RUNNING by a dead process can be marked KILLED.
PID_TAG = "genre.pid"
HOST_TAG = "genre.host"
# Not the Trainer's parameters: the gate's bars change without retraining, the tuning budget is not a setting.
UNTRAINED_SECTIONS = ("gate.", "synthetic.", "tune.")
SERVING_ALIAS = "champion"
# MLflow refuses a metric name with other characters; a genre folder may hold any ("r&b").
_NOT_IN_METRIC_NAME = re.compile(r"[^\w./\- ]")


def use_tracking(config: PipelineConfig) -> str:
    """Point mlflow at the configured store and return the experiment id."""
    mlflow.set_tracking_uri(config.mlflow_tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.pipeline_name)
    if experiment is not None:
        return experiment.experiment_id
    uri = config.mlflow_tracking_uri
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri  # a server decides its own store
    return client.create_experiment(config.pipeline_name, artifact_location=os.path.join(
        config.pipeline_root, "mlflow-artifacts") if local else None)


@contextlib.contextmanager
def training_run(config: PipelineConfig, run_name: str) -> Iterator[mlflow.ActiveRun]:
    experiment_id = use_tracking(config)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({"model": config.train.model, "feature_kind": config.features.kind,
                         "split_protocol": config.split.protocol, PID_TAG: str(os.getpid()),
                         HOST_TAG: socket.gethostname()})
        # MLflow caps a parameter value at 6000 characters; ours are far shorter.
        mlflow.log_params({k: ("None" if v is None else str(v))[:6000]
                           for k, v in config.flat_params().items() if not k.startswith(UNTRAINED_SECTIONS)})
        yield run


@contextlib.contextmanager
def resume_run(config: PipelineConfig, run_id: str) -> Iterator[mlflow.ActiveRun]:
    use_tracking(config)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def loggable_metrics(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of ``values`` (not booleans) under names MLflow accepts: other characters become '_'."""
    return {_NOT_IN_METRIC_NAME.sub("_", name): float(value) for name, value in values.items()
            if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runs(config: PipelineConfig, filter_string: str) -> tuple[MlflowClient, list]:
    """A client on the configured store (a bare ``MlflowClient()`` would open ``mlflow.db`` in the working
    dir) and the pipeline's runs that match ``filter_string``."""
    experiment_id = use_tracking(config)
    client = MlflowClient()
    return client, client.search_runs([experiment_id], filter_string=filter_string, max_results=1000)


def close_orphaned_runs(config: PipelineConfig) -> list[str]:
    """Mark KILLED the runs this host left RUNNING from a process that no longer exists (a SIGKILLed pipeline);
    the caller holds the output dir's lock, so no live run of it is mid-training."""
    client, runs = _runs(config, "attributes.status = 'RUNNING'")
    closed = []
    for run in runs:
        pid, host = run.data.tags.get(PID_TAG), run.data.tags.get(HOST_TAG)
        if not pid or host != socket.gethostname() or _alive(int(pid)):
            continue
        client.set_tag(run.info.run_id, "genre.ended", f"process {pid} died without closing the run")
        client.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
    return closed


def mark_failed(config: PipelineConfig, since_ms: int, component: str, interrupted: bool = False) -> list[str]:
    """Mark this process's runs since ``since_ms`` FAILED (KILLED on Ctrl-C), naming the component: a run the
    Trainer closed as FINISHED gave no usable model when a later component fails."""
    mine = f"tags.`{PID_TAG}` = '{os.getpid()}' and attributes.start_time >= {since_ms}"
    client, runs = _runs(config, mine)
    marked = []
    for run in runs:
        client.set_tag(run.info.run_id, "genre.failed_component", component)
        client.set_terminated(run.info.run_id, status="KILLED" if interrupted else "FAILED")
        marked.append(run.info.run_id)
    return marked
