"""The compiled pipeline: fixes applied after TFX's compiler, reading and checking it.

Vertex AI submits the PipelineJob that ``KubeflowV2DagRunner.run()`` returns; the open-source KFP API server's
upload refuses that wrapper and takes the bare ``pipelineSpec``, so :func:`pipeline_spec_of` accepts both.
"""
from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

from config.settings import PROJECT_ROOT

# Set in the image too (kubeflow/Dockerfile); repeated on every container so a pod that
# runs another image (Dataflow launcher, an override) still gets Keras 2.
CONTAINER_ENV = {"TF_USE_LEGACY_KERAS": "1"}
_CONDITION_INPUT = re.compile(r"inputs\.artifacts\['([^']+)'\]")
_IMPLICIT_KEY = re.compile(r"^_(?P<producer>.+)\.(?P<output>[^.]+)$")


def fix_condition_input_keys(spec: dict[str, Any]) -> list[str]:
    """Point each task condition at an input the task really has; return what changed. TFX 1.21 keys a condition by
    the implicit key (``_ClipEvaluator.blessing``), which a task consuming that channel under its own name (Pusher's
    ``model_blessing``) does not declare; the producer and output in the implicit key identify the declared one."""
    changes = []
    for name, task in spec["root"]["dag"]["tasks"].items():
        condition = task.get("triggerPolicy", {}).get("condition")
        if not condition:
            continue
        inputs = task.get("inputs", {}).get("artifacts", {})
        for key in set(_CONDITION_INPUT.findall(condition)) - set(inputs):
            match = _IMPLICIT_KEY.match(key)
            declared = [k for k, v in inputs.items() if match and v.get("taskOutputArtifact") == {
                "producerTask": match["producer"], "outputArtifactKey": match["output"]}]
            if len(declared) != 1:
                raise ValueError(f"Task {name}: condition {condition!r} reads input {key!r}, which the task "
                                 "does not declare and no declared input matches.")
            condition = condition.replace(f"inputs.artifacts['{key}']", f"inputs.artifacts['{declared[0]}']")
            changes.append(f"{name}: {key} -> {declared[0]}")
        task["triggerPolicy"]["condition"] = condition
    return changes


def finalize(job: dict[str, Any], pipeline_root: str) -> dict[str, Any]:
    """A copy of TFX's PipelineJob with CONTAINER_ENV on every container executor (their lifecycle hooks share the
    container; resolver executors run none), the condition fix above and the pipeline root in the spec."""
    job = copy.deepcopy(job)
    spec = job["pipelineSpec"]
    for container in (e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e):
        present = {e["name"] for e in container.get("env", [])}
        container.setdefault("env", []).extend(
            {"name": k, "value": v} for k, v in sorted(CONTAINER_ENV.items()) if k not in present)
    fix_condition_input_keys(spec)
    # The bare spec keeps the root too: KFP uses it when a run gives none.
    spec["defaultPipelineRoot"] = pipeline_root
    return job


def write(job: dict[str, Any], path: str) -> None:
    """``.yaml``/``.yml``: the bare PipelineSpec (KFP upload); otherwise the PipelineJob JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        if path.endswith((".yaml", ".yml")):
            yaml.safe_dump(job["pipelineSpec"], f, sort_keys=True)
        else:
            json.dump(job, f, indent=2, sort_keys=True)


def pipeline_spec_of(document: dict[str, Any]) -> dict[str, Any]:
    """The PipelineSpec of a PipelineJob (TFX's JSON) or of a bare spec."""
    spec = document.get("pipelineSpec", document)
    if "pipelineInfo" not in spec or "root" not in spec:
        raise ValueError("Not a KFP pipeline spec: no pipelineInfo/root. Compile one with python -m kubeflow.runner.")
    return spec


def local_path_leaks(document: dict[str, Any], markers: Iterable[str] | None = None) -> list[str]:
    """The strings of ``document`` that contain a local path (an empty list is good); ``markers`` by default: the
    paths of this machine that must never appear in a spec a cluster runs."""
    text = json.dumps(document)
    leaks = set()
    here = {str(PROJECT_ROOT), os.path.expanduser("~"), tempfile.gettempdir(), os.getcwd()} - {"", "/"}
    for marker in markers or sorted(m.rstrip("/") + "/" for m in here):
        # An absolute path starts the string or follows a separator, never a bucket
        # name ("gs://tmp/x" is remote) or a word ("pipeline_root").
        pattern = r"(?<![\w.\-])(?<!:/)" + re.escape(marker.rstrip("/")) + r"(?=$|[/\"\\\s])[^\"\\\s]*"
        leaks.update(m.group(0) for m in re.finditer(pattern, text))
    return sorted(leaks)


def unsupported_on_open_source_kfp(spec: dict[str, Any]) -> list[str]:
    """Executors the open-source KFP v2 backend refuses ("resolver executors not implemented"): the
    latest-blessed-model Resolver's, which Vertex AI Pipelines runs and KFP 2.x's Argo compiler does not."""
    return sorted(label for label, executor in spec["deploymentSpec"]["executors"].items() if "resolver" in executor)
