"""The Trainer's Vertex AI worker pools: multi-worker training from the compiled spec.

A Vertex AI Pipelines step is one container, so ``--trainer-workers N`` makes the Trainer step submit a Vertex AI
custom job (a chief and N - 1 workers, each a ``--trainer-machine-type`` machine with the Trainer's accelerator,
training under ``--strategy multi-worker``) and only wait for it. The pools are TFX's Vertex trainer settings in
the Trainer's ``custom_config``, so the compiled spec shows them.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Optional

from kubeflow.resources import StepResources

TRAINER = "Trainer"
DEFAULT_MACHINE_TYPE = "n1-standard-8"
# Compute Engine machine types: family-series-size, e.g. n1-standard-8, g2-standard-12, a2-highgpu-1g.
MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*-[a-z]+-[0-9]+[a-z]*")
# The machine series Vertex AI attaches each GPU type to, and one machine type of them.
GPU_MACHINES = {"NVIDIA_TESLA_T4": (("n1-",), "n1-standard-8"), "NVIDIA_TESLA_V100": (("n1-",), "n1-standard-8"),
                "NVIDIA_TESLA_P100": (("n1-",), "n1-standard-8"), "NVIDIA_L4": (("g2-",), "g2-standard-8"),
                "NVIDIA_TESLA_A100": (("a2-highgpu-", "a2-megagpu-"), "a2-highgpu-1g"),
                "NVIDIA_A100_80GB": (("a2-ultragpu-",), "a2-ultragpu-1g"),
                "NVIDIA_H100_80GB": (("a3-",), "a3-highgpu-8g")}
REGION = re.compile(r"[a-z]+(-[a-z]+)+[0-9]+")  # europe-west4, us-central1, northamerica-northeast1
PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")  # Google Cloud project ids
# Strategies a worker pool can train under: "one" (the default) becomes multi-worker; "auto" finds TF_CONFIG.
STRATEGIES = ("one", "multi-worker", "auto")
USAGE = ("e.g. --trainer-workers 4 --trainer-machine-type n1-standard-8 --vertex-region europe-west4 "
         "--vertex-project my-project")


@dataclasses.dataclass(frozen=True)
class WorkerPools:
    """A Vertex AI custom job of ``workers`` replicas: the chief and ``workers - 1`` others, all alike."""

    workers: int
    machine_type: str
    image: str
    region: str
    project: str
    accelerator: Optional[str] = None
    accelerator_count: int = 0

    def worker_pool_specs(self) -> list[dict[str, Any]]:
        """Vertex AI's pools: the first is the chief (``TF_CONFIG`` task ``chief``), the second the workers."""
        machine: dict[str, Any] = {"machine_type": self.machine_type}
        if self.accelerator:
            machine.update(accelerator_type=self.accelerator, accelerator_count=self.accelerator_count)
        return [{"machine_spec": dict(machine), "replica_count": replicas, "container_spec": {"image_uri": self.image}}
                for replicas in (1, self.workers - 1)]

    def custom_config(self) -> dict[str, Any]:
        """The custom_config keys TFX's Vertex trainer executor reads (the job's command is TFX's own)."""
        from tfx.extensions.google_cloud_ai_platform.constants import ENABLE_VERTEX_KEY, VERTEX_REGION_KEY
        from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY
        return {ENABLE_VERTEX_KEY: True, VERTEX_REGION_KEY: self.region,
                TRAINING_ARGS_KEY: {"project": self.project,
                                    "job_spec": {"worker_pool_specs": self.worker_pool_specs()}}}


def from_flags(workers: Optional[int], machine_type: Optional[str], region: Optional[str], project: Optional[str],
               trainer_resources: Optional[StepResources], image: str,
               gpu_image: Optional[str]) -> Optional[WorkerPools]:
    """The pools the flags ask for, or None without ``--trainer-workers``; ValueError naming the flag and the fix."""
    if workers is None:
        given = [flag for flag, value in (("--trainer-machine-type", machine_type), ("--vertex-region", region),
                                          ("--vertex-project", project)) if value]
        if given:
            raise ValueError(f"{', '.join(given)} describe the Trainer's Vertex AI worker pools, which only "
                             f"--trainer-workers N asks for; add it ({USAGE}) or drop them.")
        return None
    if workers < 2:
        raise ValueError(f"--trainer-workers {workers}: multi-worker training needs 2 or more machines (the chief "
                         "and at least one worker). To train on one machine, leave out --trainer-workers and give "
                         "the step its machine with --resources Trainer=cpu:N,memory:GB[,accelerator:T,count:N].")
    machine_type = machine_type or DEFAULT_MACHINE_TYPE
    if not MACHINE_TYPE.fullmatch(machine_type):
        raise ValueError(f"--trainer-machine-type {machine_type!r} is not a Compute Engine machine type; write "
                         "family-series-size in lower case, e.g. n1-standard-8, g2-standard-12 or a2-highgpu-1g.")
    for flag, value, pattern, what, why in (
            ("--vertex-region", region, REGION, "a region", "the Trainer's worker pools run as a Vertex AI custom job "
             "in one region; pass the region of the pipeline and its bucket"),
            ("--vertex-project", project, PROJECT, "a project id", "the Trainer's Vertex AI custom job is created in a "
             "Google Cloud project; pass its id (6 to 30 lower-case letters, digits and hyphens)")):
        if not value or not pattern.fullmatch(value):
            raise ValueError(f"{flag} {f'{value!r} is not {what}' if value else 'is missing'}: {why}, {USAGE}.")
    resources = trainer_resources or StepResources()
    if resources.cpu or resources.memory_gb:
        raise ValueError(f"--resources {TRAINER}=cpu/memory limits one container, but with --trainer-workers each "
                         f"replica is a whole --trainer-machine-type machine ({machine_type}); drop cpu and memory "
                         f"from --resources {TRAINER}=... (keep accelerator:T,count:N) and pick the machine type.")
    accelerator = resources.accelerator
    if accelerator and accelerator not in GPU_MACHINES:
        raise ValueError(f"--resources {TRAINER}=accelerator:{accelerator} with --trainer-workers: worker pools "
                         "train with MultiWorkerMirroredStrategy on GPUs or CPUs; a TPU trains with --strategy tpu "
                         "without --trainer-workers (docs/distributed.md).")
    if accelerator and not machine_type.startswith(GPU_MACHINES[accelerator][0]):
        series, example = GPU_MACHINES[accelerator]
        raise ValueError(f"--trainer-machine-type {machine_type} cannot carry {accelerator} (--resources "
                         f"{TRAINER}=...): Vertex AI attaches it to {' or '.join(p + '*' for p in series)} "
                         f"machines; pass one, e.g. --trainer-machine-type {example}.")
    return WorkerPools(workers, machine_type, (gpu_image or image) if accelerator else image, region, project,
                       accelerator, resources.count if accelerator else 0)


def training_strategy(strategy: str) -> str:
    """The ``--strategy`` the replicas train under: ``multi-worker`` (``auto`` also finds it in TF_CONFIG)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"--strategy {strategy} cannot train on --trainer-workers' machines: each replica is one "
                         "worker of MultiWorkerMirroredStrategy (using its local GPUs); pass --strategy "
                         "multi-worker or leave --strategy out.")
    return "auto" if strategy == "auto" else "multi-worker"


def apply(pipeline, pools: WorkerPools) -> None:
    """Make the pipeline's Trainer submit the custom job of ``pools``; a pipeline without one is refused."""
    from components.tracked_trainer.component import train_on_vertex_worker_pools
    trainers = [component for component in pipeline.components if component.id == TRAINER]
    if not trainers:
        raise ValueError(f"--trainer-workers: the pipeline has no {TRAINER} step to train on worker pools.")
    train_on_vertex_worker_pools(trainers[0], pools.custom_config())
