"""Beam arguments for the Beam-based components on Kubeflow: presets (documentation, printed by --help) and checks.

The pipeline image carries the Beam SDK harness, so it is filled in as the SDK container of a distributed runner
that needs one and was given none.
"""
from __future__ import annotations

from config.settings import PipelineConfig
from kubeflow.cluster import require_remote

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
