"""TrackedTrainer on Vertex AI worker pools: the job the step submits, what it publishes, what replicas run.

Nothing here reaches Google Cloud: TFX's real Vertex job client builds the custom job, and only its network
calls (creating the API client, submitting and polling the job) are replaced.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pytest
from tfx.components.trainer import fn_args_utils
from tfx.extensions.google_cloud_ai_platform import runner as cloud_runner, training_clients
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs as keys
from tfx.utils import json_utils, proto_utils

from components import contract, model_tracks
from components.tracked_trainer.vertex_executor import ReplicaExecutor, VertexExecutor
from config.settings import TRAINING_SECTIONS, PipelineConfig
from kubeflow.worker_pools import WorkerPools
from models.tracking import RUN_ID_FILE, RUN_ID_PROPERTY
from tests.testkit.training_inputs import examples_of_tracks

CONFIG = PipelineConfig()
POOLS = WorkerPools(3, "n1-standard-8", "registry.example.com/genre/genre-pipeline-gpu:1.2.3", "europe-west4",
                    "genre-project", "NVIDIA_TESLA_T4", 1)
TRACKS = {"train": ["blues.00000", "rock.00000"], "eval": ["blues.00001"], "test": ["rock.00001"]}
CHIEF_AND_WORKER = {"cluster": {"chief": ["chief:2222"], "worker": ["worker:2222"]}}


def _trainer_io(tmp_path, custom_config: dict[str, Any], run_fn: str = "models.training.run_fn"):
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    os.makedirs(model.uri)
    exec_properties = {
        keys.RUN_FN_KEY: run_fn,
        keys.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
        keys.EVAL_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
        keys.CUSTOM_CONFIG_KEY: json_utils.dumps(
            {"pipeline_config": CONFIG.to_json(TRAINING_SECTIONS), **custom_config})}
    inputs = {keys.EXAMPLES_KEY: [examples_of_tracks(tmp_path / "examples", TRACKS)]}
    return inputs, {"model": [model], "model_run": [model_run]}, exec_properties


def test_the_step_submits_the_worker_pools_and_publishes_what_the_chief_wrote(tmp_path, monkeypatch):
    submitted = []

    def launch(project: str, training_job: dict[str, Any], enable_vertex: bool, vertex_region: str) -> None:
        submitted.append((project, training_job, enable_vertex, vertex_region))
        # What the job's chief leaves beside the model: the run id of its MLflow run.
        with open(os.path.join(model.uri, RUN_ID_FILE), "w") as f:
            f.write("0123abcd\n")

    monkeypatch.setattr(training_clients.VertexJobClient, "create_client", lambda self: None)
    monkeypatch.setattr(cloud_runner, "_launch_cloud_training", launch)
    inputs, outputs, exec_properties = _trainer_io(tmp_path, POOLS.custom_config())
    model = outputs["model"][0]
    VertexExecutor().Do(inputs, outputs, exec_properties)

    [(project, job, enable_vertex, region)] = submitted
    assert (project, enable_vertex, region) == ("genre-project", True, "europe-west4")
    pools = job["job_spec"]["worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 2]
    for pool in pools:
        assert pool["machine_spec"] == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4",
                                        "accelerator_count": 1}
        container = pool["container_spec"]
        assert container["image_uri"] == POOLS.image
        assert container["command"][:5] == ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path",
                                            "components.tracked_trainer.vertex_executor.ReplicaExecutor"]
        replica_config = json.loads(json.loads(container["command"][container["command"].index(
            "--exec-properties") + 1])[keys.CUSTOM_CONFIG_KEY])
        assert replica_config["pipeline_config"] == CONFIG.to_json(TRAINING_SECTIONS)
    # The tracking, published by the step once the job succeeded.
    assert model.get_string_custom_property(RUN_ID_PROPERTY) == "0123abcd"
    assert model.get_string_custom_property(contract.MODEL_PROPERTY) == contract.input_contract(CONFIG)
    assert model_tracks.load(model.uri) == {model_tracks.IDENTITY_KEY: model_tracks.IDENTITY, **TRACKS}


def test_a_failed_job_publishes_nothing(tmp_path, monkeypatch):
    def launch(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Job 'tfx_1' did not succeed.")

    monkeypatch.setattr(training_clients.VertexJobClient, "create_client", lambda self: None)
    monkeypatch.setattr(cloud_runner, "_launch_cloud_training", launch)
    inputs, outputs, exec_properties = _trainer_io(tmp_path, POOLS.custom_config())
    with pytest.raises(RuntimeError, match="did not succeed"):
        VertexExecutor().Do(inputs, outputs, exec_properties)
    assert not outputs["model"][0].has_custom_property(contract.MODEL_PROPERTY)


def train_without_export(fn_args: fn_args_utils.FnArgs) -> None:
    """A run_fn as a non-chief replica runs it: it trains, and the chief alone exports."""
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, "ran"), "w") as f:
        f.write(",".join(fn_args.train_files))


@pytest.mark.parametrize("task, exported", [({"type": "worker", "index": 0}, False), ({"type": "chief"}, True)])
def test_a_replica_runs_run_fn_and_only_the_chief_needs_the_export(tmp_path, monkeypatch, task, exported):
    monkeypatch.setenv("TF_CONFIG", json.dumps({**CHIEF_AND_WORKER, "task": task}))
    inputs, outputs, exec_properties = _trainer_io(tmp_path, {}, run_fn=f"{__name__}.train_without_export")
    if exported:  # TFX's own check on the chief: no export, no model
        with pytest.raises(RuntimeError, match="run_fn failed to generate model"):
            ReplicaExecutor().Do(inputs, outputs, exec_properties)
    else:
        ReplicaExecutor().Do(inputs, outputs, exec_properties)
    ran = (tmp_path / "model_run" / "ran").read_text()
    assert ran == os.path.join(artifact_utils.get_split_uri(inputs[keys.EXAMPLES_KEY], "train"), "*")
