"""Upload a compiled genre pipeline to Kubeflow Pipelines and run it on a schedule.

    python -m kubeflow.schedule --host https://KFP_HOST --spec genre-pipeline.json \\
        --experiment genre --cron "0 0 3 * * *" --job-name genre-nightly
    python -m kubeflow.schedule --spec genre-pipeline.json --dry-run   # print the requests, send nothing

Three requests through kfp.Client: upload the pipeline (a new version when the name exists), create or reuse
the experiment, create the recurring run on that version. The cron is KFP's six-field format, seconds first:
"0 0 3 * * *" is 03:00 every day.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
from typing import Any, Callable, Optional

import yaml

from config.errors import cli_failure
from kubeflow import spec as spec_lib
from kubeflow.cluster import require_remote

DEFAULT_CRON = "0 0 3 * * *"
# robfig/cron (KFP's scheduler): second minute hour day-of-month month day-of-week.
_CRON_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
                ("month", 1, 12), ("day of week", 0, 6))
_CRON_NAMES = {
    4: {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    5: {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}
_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_RANGE = re.compile(r"^(?P<range>\*|\?|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def validate_cron(cron: str) -> str:
    """``cron`` normalised to single spaces, or ValueError saying which field is wrong."""
    expr = " ".join(cron.split())
    if expr.lower() in _CRON_DESCRIPTORS:
        return expr
    fields = expr.split(" ")
    if len(fields) != 6:
        hint = f" (seconds first: '0 {expr}')" if len(fields) == 5 else ""
        raise ValueError(f"cron {cron!r} has {len(fields)} fields; KFP needs 6: second minute hour "
                         f"day-of-month month day-of-week{hint}.")
    for index, (field, (name, low, high)) in enumerate(zip(fields, _CRON_FIELDS)):
        for part in field.lower().split(","):
            match = _RANGE.match(part)
            if not match:
                raise ValueError(f"cron {cron!r}: {name} field {field!r} is not a value, range, list or step.")
            if match["step"] is not None and int(match["step"]) == 0:
                raise ValueError(f"cron {cron!r}: {name} step must be positive.")
            if match["range"] in ("*", "?"):
                continue
            for value in match["range"].split("-"):
                number = _CRON_NAMES.get(index, {}).get(value) if not value.isdigit() else int(value)
                if number is None or not low <= number <= high:
                    raise ValueError(f"cron {cron!r}: {name} {value!r} is outside {low}-{high}.")
    return expr


@dataclasses.dataclass(frozen=True)
class ScheduleRequest:
    """Everything the three KFP calls send."""

    host: Optional[str]
    namespace: Optional[str]
    pipeline_name: str
    pipeline_version: str
    pipeline_description: str
    pipeline_spec: dict[str, Any]
    experiment: str
    job_name: str
    cron: str
    max_concurrency: int
    pipeline_root: str

    def describe(self) -> dict[str, Any]:
        """The requests as --dry-run prints them (the spec by digest, tasks and images)."""
        executors = self.pipeline_spec["deploymentSpec"]["executors"].values()
        return {
            "kfp_host": self.host, "namespace": self.namespace,
            "upload_pipeline": {
                "name": self.pipeline_name, "version": self.pipeline_version,
                "description": self.pipeline_description, "spec_sha256": spec_digest(self.pipeline_spec),
                "tasks": sorted(self.pipeline_spec["root"]["dag"]["tasks"]),
                "images": sorted({e["container"]["image"] for e in executors if "container" in e}),
                "enable_cache": sorted({t.get("cachingOptions", {}).get("enableCache", False)
                                        for t in self.pipeline_spec["root"]["dag"]["tasks"].values()}),
            },
            "experiment": {"name": self.experiment},
            "recurring_run": {
                "display_name": self.job_name, "cron": self.cron, "max_concurrency": self.max_concurrency,
                "pipeline_root": self.pipeline_root, "no_catchup": True, "enabled": True,
            },
        }


def spec_digest(pipeline_spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(pipeline_spec, sort_keys=True).encode()).hexdigest()


def with_caching(pipeline_spec: dict[str, Any], enable: bool) -> dict[str, Any]:
    """A copy with every task's cache switched (root and any sub-DAG): kfp.Client ignores ``enable_caching``
    for a run that references an uploaded pipeline version."""
    result = copy.deepcopy(pipeline_spec)
    dags = [result["root"]["dag"]] + [c["dag"] for c in result.get("components", {}).values() if "dag" in c]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task.setdefault("cachingOptions", {})["enableCache"] = enable
    return result


def build_request(document: dict[str, Any], *, host: Optional[str], experiment: str, cron: str, job_name: str,
                  max_concurrency: int = 1, pipeline_root: Optional[str] = None,
                  enable_caching: Optional[bool] = None, pipeline_name: Optional[str] = None,
                  namespace: Optional[str] = None) -> ScheduleRequest:
    """The request for a compiled spec (PipelineJob JSON or bare PipelineSpec); ValueError if invalid."""
    spec = spec_lib.pipeline_spec_of(document)
    if enable_caching is not None:
        spec = with_caching(spec, enable_caching)
    root = (pipeline_root or document.get("runtimeConfig", {}).get("gcsOutputDirectory")
            or spec.get("defaultPipelineRoot", ""))
    if not root:
        raise ValueError("The spec names no pipeline root; pass --pipeline-root gs://BUCKET/ROOT.")
    root = require_remote("--pipeline-root", root)
    if max_concurrency < 1:
        raise ValueError("--max-concurrency must be at least 1.")
    if not job_name.strip() or not experiment.strip():
        raise ValueError("--job-name and --experiment must not be empty.")
    name = pipeline_name or spec["pipelineInfo"]["name"]
    return ScheduleRequest(
        host=host, namespace=namespace, pipeline_name=name,
        pipeline_version=f"{name}-{spec_digest(spec)[:12]}",
        pipeline_description=f"{name}, compiled by {spec.get('sdkVersion', 'tfx')} (kubeflow.runner)",
        pipeline_spec=spec, experiment=experiment, job_name=job_name, cron=validate_cron(cron),
        max_concurrency=max_concurrency, pipeline_root=root)


def send(request: ScheduleRequest, client_factory: Optional[Callable[..., Any]] = None) -> dict[str, str]:
    """Upload, experiment, recurring run; the ids KFP returned. The only part that talks to KFP: build_request()
    is pure, so what would be sent is testable without a cluster."""
    if not request.host:
        raise ValueError("--host is required (or KF_PIPELINES_ENDPOINT), unless --dry-run.")
    if client_factory is None:
        import kfp
        client_factory = kfp.Client
    client = client_factory(host=request.host, namespace=request.namespace or "kubeflow")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pipeline.yaml")  # kfp wants .yaml; the bare spec, as KFP's upload takes
        with open(path, "w") as f:
            yaml.safe_dump(request.pipeline_spec, f, sort_keys=True)
        pipeline_id = client.get_pipeline_id(request.pipeline_name)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(path, pipeline_name=request.pipeline_name,
                                                 description=request.pipeline_description,
                                                 namespace=request.namespace).pipeline_id
            versions = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
            version_id = versions.pipeline_versions[0].pipeline_version_id
        else:
            by_name = {"operation": "EQUALS", "key": "display_name", "stringValue": request.pipeline_version}
            found = client.list_pipeline_versions(pipeline_id, filter=json.dumps({"predicates": [by_name]}))
            if found.pipeline_versions:  # the same spec was uploaded before: reuse it
                version_id = found.pipeline_versions[0].pipeline_version_id
            else:
                version_id = client.upload_pipeline_version(
                    path, pipeline_version_name=request.pipeline_version, pipeline_id=pipeline_id,
                    description=request.pipeline_description).pipeline_version_id
    experiment = client.create_experiment(request.experiment, namespace=request.namespace)
    run = client.create_recurring_run(
        experiment_id=experiment.experiment_id, job_name=request.job_name, cron_expression=request.cron,
        max_concurrency=request.max_concurrency, no_catchup=True, pipeline_id=pipeline_id,
        version_id=version_id, pipeline_root=request.pipeline_root, enabled=True)
    return {"pipeline_id": pipeline_id, "pipeline_version_id": version_id,
            "experiment_id": experiment.experiment_id, "recurring_run_id": run.recurring_run_id}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kubeflow.schedule", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="compiled spec (python -m kubeflow.runner --output)")
    parser.add_argument("--host", default=os.environ.get("KF_PIPELINES_ENDPOINT"),
                        help="KFP API endpoint, e.g. http://localhost:8080 after `kubectl port-forward -n kubeflow "
                             "svc/ml-pipeline-ui 8080:80` (default: $KF_PIPELINES_ENDPOINT)")
    parser.add_argument("--namespace", help="Kubeflow profile namespace (multi-user deployments)")
    parser.add_argument("--experiment", default="genre-pipeline", help="(default: %(default)s)")
    parser.add_argument("--cron", default=DEFAULT_CRON,
                        help="six-field cron, seconds first (default: '%(default)s', 03:00 daily)")
    parser.add_argument("--job-name", default="genre-pipeline-schedule", help="(default: %(default)s)")
    parser.add_argument("--pipeline-name", help="name of the uploaded pipeline (default: the spec's)")
    parser.add_argument("--max-concurrency", type=int, default=1,
                        help="runs of this schedule at the same time (default: %(default)s)")
    parser.add_argument("--pipeline-root", help="remote root for this schedule's runs (default: the compiled one)")
    caching = parser.add_mutually_exclusive_group()
    caching.add_argument("--enable-caching", dest="enable_caching", action="store_true", default=None,
                         help="reuse cached step outputs (default: as compiled, on)")
    caching.add_argument("--no-caching", dest="enable_caching", action="store_false",
                         help="re-execute every step on every run")
    parser.add_argument("--dry-run", action="store_true", help="print the requests as JSON; send nothing")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    try:
        with open(args.spec) as f:
            document = yaml.safe_load(f)  # JSON is YAML
    except (OSError, yaml.YAMLError) as err:
        raise cli_failure(f"Cannot read the compiled spec {args.spec} ({type(err).__name__}: {err}).\n"
                          "Fix: compile one with `python -m kubeflow.runner --image REGISTRY/genre-pipeline:TAG "
                          f"--output {args.spec}` (kubeflow/README.md).", err, "kubeflow-schedule") from None
    try:
        request = build_request(document, host=args.host, experiment=args.experiment, cron=args.cron,
                                job_name=args.job_name, max_concurrency=args.max_concurrency,
                                pipeline_root=args.pipeline_root, enable_caching=args.enable_caching,
                                pipeline_name=args.pipeline_name, namespace=args.namespace)
    except ValueError as err:  # includes LocalPathError
        raise SystemExit(f"error: {err}") from None
    if args.dry_run:
        print(json.dumps(described := request.describe(), indent=2))
        return described
    unsupported = spec_lib.unsupported_on_open_source_kfp(request.pipeline_spec)
    if unsupported:
        print(f"[schedule] warning: {', '.join(unsupported)} are resolver executors, which the open-source "
              "KFP v2 backend refuses when it starts a run; compile with --no-baseline for it (kubeflow/README.md).",
              file=sys.stderr)
    try:
        ids = send(request)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    except Exception as err:  # noqa: BLE001 - kfp, urllib3 and the server's API errors: one paragraph
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1][:200]
        raise cli_failure(
            f"Cannot reach the Kubeflow Pipelines API at {request.host} ({type(err).__name__}: {reason}).\n"
            "Fix: check --host (or KF_PIPELINES_ENDPOINT); for a cluster, `kubectl port-forward -n kubeflow "
            "svc/ml-pipeline-ui 8080:80` and pass --host http://localhost:8080.", err, "kubeflow-schedule") from None
    print(json.dumps(ids, indent=2))
    return ids


if __name__ == "__main__":
    main(sys.argv[1:])
