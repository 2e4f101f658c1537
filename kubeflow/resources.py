"""Per-step machine resources and the GPU image in the compiled Kubeflow spec.

``--resources STEP=cpu:8,memory:32,accelerator:NVIDIA_TESLA_T4,count:1`` becomes the step's TFX platform config,
from which Vertex AI Pipelines picks a machine. A step with an accelerator runs ``--gpu-image``
(kubeflow/Dockerfile.gpu): the CPU image's TensorFlow cannot use a GPU.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Optional

# Vertex AI's accelerator names (a KFP cluster maps the type to its own node selector).
ACCELERATORS = ("NVIDIA_TESLA_T4", "NVIDIA_L4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_A100",
                "NVIDIA_A100_80GB", "NVIDIA_H100_80GB", "TPU_V2", "TPU_V3")
KEYS = ("cpu", "memory", "accelerator", "count")


@dataclasses.dataclass(frozen=True)
class StepResources:
    """Limits of one step's container: vCPUs, memory in GB, accelerator type and count."""

    cpu: Optional[float] = None
    memory_gb: Optional[float] = None
    accelerator: Optional[str] = None
    count: int = 0

    def resource_spec(self):
        """TFX's platform config for KubeflowV2DagRunner (a KFP ResourceSpec proto)."""
        from kfp.pipeline_spec import pipeline_spec_pb2
        spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
        if self.cpu:
            spec.cpu_limit = self.cpu
        if self.memory_gb:
            spec.memory_limit = self.memory_gb
        if self.accelerator:
            spec.accelerator.type = self.accelerator
            spec.accelerator.count = self.count
        return spec


def parse(text: str) -> tuple[str, StepResources]:
    """``STEP=cpu:8,...`` -> (step, resources); ValueError naming the fix."""
    usage = ("write STEP=cpu:N,memory:GB[,accelerator:TYPE,count:N], e.g. "
             "Trainer=cpu:8,memory:32,accelerator:NVIDIA_TESLA_T4,count:1")
    step, sep, rest = text.partition("=")
    if not sep or not step.strip() or not rest.strip():
        raise ValueError(f"--resources {text!r}: {usage}.")
    values: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.partition(":")
        if not sep or key.strip() not in KEYS or not value.strip():
            raise ValueError(f"--resources {text!r}: {item!r} is not one of {', '.join(k + ':VALUE' for k in KEYS)}; "
                             f"{usage}.")
        values[key.strip()] = value.strip()
    try:
        cpu = float(values["cpu"]) if "cpu" in values else None
        memory = float(values["memory"].removesuffix("G").removesuffix("GB")) if "memory" in values else None
        count = int(values.get("count", "1" if "accelerator" in values else "0"))
    except ValueError:
        raise ValueError(f"--resources {text!r}: cpu and memory take numbers (memory in GB), count a whole number; "
                         f"{usage}.") from None
    accelerator = values.get("accelerator")
    if accelerator is not None and accelerator not in ACCELERATORS:
        raise ValueError(f"--resources {text!r}: accelerator {accelerator!r} is not one of {', '.join(ACCELERATORS)}.")
    if any(v is not None and v <= 0 for v in (cpu, memory)) or (accelerator and count < 1):
        raise ValueError(f"--resources {text!r}: cpu, memory and the accelerator count must be above 0.")
    if count and not accelerator:
        raise ValueError(f"--resources {text!r}: count:{count} without an accelerator type; {usage}.")
    return step.strip(), StepResources(cpu, memory, accelerator, count)


def parse_all(texts: Iterable[str]) -> dict[str, StepResources]:
    """Every ``--resources`` value by step; a step named twice is refused."""
    result: dict[str, StepResources] = {}
    for text in texts:
        step, resources = parse(text)
        if step in result:
            raise ValueError(f"--resources names {step} twice; give one value per step.")
        result[step] = resources
    return result


def accelerated_steps(resources: Mapping[str, StepResources]) -> list[str]:
    return sorted(step for step, r in resources.items() if r.accelerator)


def apply(pipeline, resources: Mapping[str, StepResources]) -> None:
    """Set each named component's platform config before compiling; unknown step names are refused."""
    components = {component.id: component for component in pipeline.components}
    unknown = sorted(set(resources) - set(components))
    if unknown:
        raise ValueError(f"--resources names {', '.join(unknown)}, not a step of the pipeline; steps: "
                         f"{', '.join(sorted(components))}.")
    for step, step_resources in resources.items():
        components[step].with_platform_config(step_resources.resource_spec())


def use_image(spec: dict[str, Any], steps: Iterable[str], image: str) -> None:
    """Run ``steps`` (their containers) in ``image`` instead of the pipeline's default image."""
    for step in steps:
        label = spec["components"][spec["root"]["dag"]["tasks"][step]["componentRef"]["name"]]["executorLabel"]
        spec["deploymentSpec"]["executors"][label]["container"]["image"] = image
