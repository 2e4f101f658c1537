"""Kubeflow Pipelines v2: the compiled spec, the image recipe and the scheduling requests.

Exercised here, without a cluster: the real compile (create_pipeline() through TFX's
KubeflowV2DagRunner, via ``python -m kubeflow.runner``'s main) and checks on the spec it
writes; the refusal of local paths; a static lint of kubeflow/Dockerfile (there is no
Docker engine here, so the image is never built); the scheduling request (pure function
and --dry-run); and the real kfp.Client sending that request to a *test double* of the
KFP API server, a few-line http.server on 127.0.0.1 that records what it receives.

Not exercised (needs a cluster, a registry or Vertex AI): building and pushing the
image, the KFP backend accepting the spec and running its steps, the resolver executors
(run by Vertex AI Pipelines; the open-source KFP backend refuses them, see
kubeflow/README.md), GCS access, MLflow on a tracking server, distributed Beam runners.
"""
from __future__ import annotations

import email.parser
import json
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import PROJECT_ROOT
from kubeflow import cluster, runner, schedule
from kubeflow import spec as spec_lib

IMAGE = "registry.example.com/genre/genre-pipeline:1.2.3"
ROOT = "gs://genre-bucket/pipeline-root"
DATA = "gs://genre-bucket/gtzan"
MLFLOW = "http://mlflow.mlflow.svc.cluster.local:5000"
BASE_ARGS = ["--image", IMAGE, "--pipeline-root", ROOT, "--data-root", DATA, "--mlflow-uri", MLFLOW]
DATAFLOW = ["--beam-arg=--runner=DataflowRunner", "--beam-arg=--project=genre-project",
            "--beam-arg=--region=europe-west4", "--beam-arg=--temp_location=gs://genre-bucket/beam-tmp"]
COMPONENTS = {"AudioExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomalyGate",
              "Transform", "Trainer", "Evaluator", "ClipEvaluator", "Pusher", "ModelRegistrar"}
RESOLVER = "latest_blessed_model_resolver"
BEAM_COMPONENTS = {"AudioExampleGen", "StatisticsGen", "Transform", "Evaluator"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """One real compile (default synthetic-sized config, Dataflow Beam args), as written to disk."""
    output = tmp_path_factory.mktemp("kubeflow") / "genre-pipeline.json"
    runner.main(BASE_ARGS + DATAFLOW + ["--output", str(output)])
    return output, json.loads(output.read_text())


@pytest.fixture(scope="module")
def spec(compiled) -> dict[str, Any]:
    return compiled[1]["pipelineSpec"]


def tasks(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["root"]["dag"]["tasks"]


def executor(spec: dict[str, Any], task: str) -> dict[str, Any]:
    label = spec["components"][tasks(spec)[task]["componentRef"]["name"]]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]


def parameter(spec: dict[str, Any], task: str, name: str) -> Any:
    return tasks(spec)[task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]["stringValue"]


# ----- the compiled spec -----------------------------------------------------------

def test_every_component_is_a_task(spec):
    assert set(tasks(spec)) == COMPONENTS | {f"{RESOLVER}-model-blessing-resolver", f"{RESOLVER}-model-resolver"}
    assert spec["pipelineInfo"]["name"] == "genre-pipeline"


def test_pusher_and_registrar_run_only_when_the_clip_gate_blessed(spec):
    conditional = {name for name, task in tasks(spec).items() if task.get("triggerPolicy", {}).get("condition")}
    assert conditional == {"Pusher", "ModelRegistrar"}
    for name in conditional:
        condition = tasks(spec)[name]["triggerPolicy"]["condition"]
        assert re.fullmatch(r"\(inputs\.artifacts\['[^']+'\]\.artifacts\[0\]\.metadata\['blessed'\] == 1\.0\)",
                            condition), condition
        # The condition reads an input the task declares, and that input is ClipEvaluator's blessing
        # (for Pusher this needed spec.fix_condition_input_keys).
        key = re.search(r"inputs\.artifacts\['([^']+)'\]", condition).group(1)
        assert tasks(spec)[name]["inputs"]["artifacts"][key]["taskOutputArtifact"] == {
            "producerTask": "ClipEvaluator", "outputArtifactKey": "blessing"}
        component = spec["components"][tasks(spec)[name]["componentRef"]["name"]]
        assert key in component["inputDefinitions"]["artifacts"]


def test_the_baseline_is_the_latest_blessed_model(spec):
    blessing_query = executor(spec, f"{RESOLVER}-model-blessing-resolver")["resolver"]["outputArtifactQueries"]
    assert 'schema_title="tfx.ModelBlessing"' in blessing_query["model_blessing"]["filter"]
    assert "metadata.blessed.number_value=1" in blessing_query["model_blessing"]["filter"]
    model_query = executor(spec, f"{RESOLVER}-model-resolver")["resolver"]["outputArtifactQueries"]
    assert 'schema_title="tfx.Model"' in model_query["model"]["filter"]
    assert tasks(spec)[f"{RESOLVER}-model-resolver"]["inputs"]["artifacts"]["input"]["taskOutputArtifact"][
        "producerTask"] == f"{RESOLVER}-model-blessing-resolver"
    for consumer in ("Evaluator", "ClipEvaluator"):
        baseline = tasks(spec)[consumer]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
        assert baseline == {"producerTask": f"{RESOLVER}-model-resolver", "outputArtifactKey": "model"}
    assert spec_lib.unsupported_on_open_source_kfp(spec) == sorted(
        f"{RESOLVER}-{part}-resolver_executor" for part in ("model", "model-blessing"))



def test_the_baseline_rule_runs_on_kubeflow_too(spec):
    """The resolver returns the latest blessed model of any family; the executors that read it
    (the same classes as the local run) drop it when its input format differs."""
    args = executor(spec, "Evaluator")["container"]["args"]
    assert "components.baseline_aware_evaluator.executor.Executor" in " ".join(args)
    assert "components.clip_evaluator.executor.Executor" in " ".join(executor(spec, "ClipEvaluator")["container"]["args"])


def test_the_no_baseline_variant_has_nothing_open_source_kfp_refuses(tmp_path, spec):
    """--no-baseline: no resolver tasks, no baseline inputs, TFMA without its change threshold."""
    job = runner.main(BASE_ARGS + ["--no-baseline", "--output", str(tmp_path / "no-baseline.json")])
    variant = job["pipelineSpec"]
    assert set(tasks(variant)) == COMPONENTS
    assert spec_lib.unsupported_on_open_source_kfp(variant) == []
    for consumer in ("Evaluator", "ClipEvaluator"):
        assert "baseline_model" not in tasks(variant)[consumer]["inputs"]["artifacts"]
        assert "baseline_model" in tasks(spec)[consumer]["inputs"]["artifacts"]  # the default keeps it
    assert "change_threshold" not in parameter(variant, "Evaluator", "eval_config")
    assert "change_threshold" in parameter(spec, "Evaluator", "eval_config")


def test_every_container_runs_the_image_with_keras_2(spec):
    containers = {label: e["container"] for label, e in spec["deploymentSpec"]["executors"].items()
                  if "container" in e}
    assert len(containers) == len(COMPONENTS)
    for label, container in containers.items():
        assert container["image"] == IMAGE, label
        assert container["command"][-1] == "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
        assert {"name": "TF_USE_LEGACY_KERAS", "value": "1"} in container["env"], label


def test_beam_args_reach_the_beam_components(spec):
    # TFX appends the pipeline's Beam args to every executor; the Beam ones use them.
    expected = ["--runner=DataflowRunner", "--project=genre-project", "--region=europe-west4",
                "--temp_location=gs://genre-bucket/beam-tmp", f"--sdk_container_image={IMAGE}"]
    for name in BEAM_COMPONENTS:
        args = executor(spec, name)["container"]["args"]
        assert args[-len(expected):] == expected, name
        assert args.count("--runner=DataflowRunner") == 1 and "--runner=DirectRunner" not in args, name
    # ExampleGen's driver (input fingerprint, span) runs with the same Beam args.
    assert executor(spec, "AudioExampleGen")["container"]["lifecycle"]["preCacheCheck"]["args"][-1] == expected[-1]


def test_module_code_is_referenced_by_import_path(spec):
    from pipeline.pipeline import PREPROCESSING_FN, RUN_FN  # here: the other tests need no TFX import

    import importlib.util

    assert parameter(spec, "Transform", "preprocessing_fn") == PREPROCESSING_FN
    assert parameter(spec, "Trainer", "run_fn") == RUN_FN
    for function_path in (PREPROCESSING_FN, RUN_FN):  # module paths under the project root (= /pipeline)
        module = function_path.rsplit(".", 1)[0]
        assert "/" not in function_path and importlib.util.find_spec(module).origin.startswith(str(PROJECT_ROOT))
    assert "module_file" not in tasks(spec)["Transform"]["inputs"]["parameters"]
    assert executor(spec, "ClipEvaluator")["container"]["args"][1] == "components.clip_evaluator.executor.Executor"


@pytest.fixture(scope="module")
def tuned_spec(tmp_path_factory) -> dict[str, Any]:
    """A compile with --tune, read back from its JSON file."""
    output = tmp_path_factory.mktemp("kubeflow-tune") / "genre-pipeline.json"
    runner.main(BASE_ARGS + ["--tune", "--tune-trials", "7", "--tune-oracle", "bayesian", "--output", str(output)])
    return json.loads(output.read_text())["pipelineSpec"]


def test_tune_adds_the_tuner_whose_best_hyperparameters_the_trainer_takes(tuned_spec, spec):
    from pipeline.pipeline import TUNER_FN

    assert set(tasks(tuned_spec)) - set(tasks(spec)) == {"Tuner"}
    assert parameter(tuned_spec, "Tuner", "tuner_fn") == TUNER_FN
    tune = json.loads(json.loads(parameter(tuned_spec, "Tuner", "custom_config"))["pipeline_config"])["tune"]
    assert (tune["enabled"], tune["trials"], tune["oracle"]) == (True, 7, "bayesian")
    for name in ("examples", "transform_graph"):
        assert tasks(tuned_spec)["Tuner"]["inputs"]["artifacts"][name]["taskOutputArtifact"]["producerTask"] == \
            "Transform"
    taken = tasks(tuned_spec)["Trainer"]["inputs"]["artifacts"]["hyperparameters"]["taskOutputArtifact"]
    assert taken == {"producerTask": "Tuner", "outputArtifactKey": "best_hyperparameters"}
    assert "hyperparameters" not in tasks(spec)["Trainer"]["inputs"]["artifacts"]


def test_paths_are_remote_or_in_the_image(compiled, spec):
    output, job = compiled
    text = output.read_text()
    for local in ("/work/", "/root/", "/tmp/", "/home/", str(PROJECT_ROOT), str(output.parent)):
        assert local not in text, local
    assert spec_lib.local_path_leaks(job) == []
    assert job["runtimeConfig"]["gcsOutputDirectory"] == ROOT and spec["defaultPipelineRoot"] == ROOT
    assert parameter(spec, "ImportSchemaGen", "schema_file") == "/pipeline/schemas/22050hz_3s/schema.pbtxt"
    assert json.loads(parameter(spec, "Pusher", "push_destination"))["filesystem"]["base_directory"] == \
        f"{ROOT}/serving/genre"
    paths = json.loads(parameter(spec, "ClipEvaluator", "pipeline_config_json"))["paths"]
    assert paths == {"data_root": DATA, "output_dir": ROOT, "pipeline_root": ROOT, "metadata_path": "",
                     "serving_dir": f"{ROOT}/serving/genre", "mlflow_tracking_uri": MLFLOW}
    assert parameter(spec, "AudioExampleGen", "input_base") == DATA


def test_the_local_path_check_catches_a_leak(spec):
    # The guard the runner applies after compiling: it must see a checkout path anywhere.
    leaked = json.loads(json.dumps(spec).replace(ROOT + "/serving", str(PROJECT_ROOT / "outputs" / "serving")))
    assert spec_lib.local_path_leaks(leaked) == [str(PROJECT_ROOT / "outputs" / "serving") + "/genre"]
    assert spec_lib.local_path_leaks({"bucket named tmp": "gs://tmp/x", "word": "pipeline_root"},
                                     ["/tmp/", "/root/"]) == []


def test_condition_fix_maps_implicit_keys_to_declared_inputs():
    def spec_with(inputs: dict[str, Any]) -> dict[str, Any]:
        return {"root": {"dag": {"tasks": {"Pusher": {
            "inputs": {"artifacts": inputs},
            "triggerPolicy": {"condition": "(inputs.artifacts['_Gate.blessing'].artifacts[0]"
                                           ".metadata['blessed'] == 1.0)"}}}}}}

    declared = spec_with({"model_blessing": {"taskOutputArtifact": {"producerTask": "Gate",
                                                                    "outputArtifactKey": "blessing"}}})
    assert spec_lib.fix_condition_input_keys(declared) == ["Pusher: _Gate.blessing -> model_blessing"]
    assert "inputs.artifacts['model_blessing']" in declared["root"]["dag"]["tasks"]["Pusher"]["triggerPolicy"][
        "condition"]
    unrelated = spec_with({"model": {"taskOutputArtifact": {"producerTask": "Trainer", "outputArtifactKey": "model"}}})
    with pytest.raises(ValueError, match="does not declare"):
        spec_lib.fix_condition_input_keys(unrelated)


def test_yaml_output_is_the_bare_pipeline_spec(compiled, tmp_path):
    spec_lib.write(compiled[1], str(tmp_path / "genre.yaml"))
    bare = yaml.safe_load((tmp_path / "genre.yaml").read_text())
    assert bare == compiled[1]["pipelineSpec"]
    assert spec_lib.pipeline_spec_of(bare) == spec_lib.pipeline_spec_of(compiled[1])


# ----- flags: local paths refused, Beam args checked ------------------------------------

def runner_argv(**changes: str | list[str] | None) -> list[str]:
    """BASE_ARGS with flags replaced (None drops one); ``beam`` adds --beam-arg values."""
    args: dict[str, Any] = dict(zip(BASE_ARGS[::2], BASE_ARGS[1::2]))
    beam_args = changes.pop("beam", None) or []
    args.update({"--" + k.replace("_", "-"): v for k, v in changes.items()})
    return [p for flag, value in args.items() if value is not None for p in (flag, value)] + [
        f"--beam-arg={a}" for a in beam_args]


@pytest.mark.parametrize("changes, message", [
    ({"pipeline_root": "/tmp/genre-root"}, "--pipeline-root '/tmp/genre-root' is not a remote URI"),
    ({"pipeline_root": "file:///data/root"}, "--pipeline-root 'file:///data/root' is not a remote URI"),
    ({"pipeline_root": None}, "--pipeline-root is required on Kubeflow"),
    ({"data_root": str(PROJECT_ROOT / "outputs" / "gtzan")}, "--data-root"),
    ({"data_root": None}, "--data-root is required on Kubeflow"),
    ({"mlflow_uri": "sqlite:///tmp/mlflow.db"}, "--mlflow-uri 'sqlite:///tmp/mlflow.db' is not reachable"),
    ({"mlflow_uri": None}, "--mlflow-uri is required on Kubeflow"),
    ({"serving_dir": "outputs/serving"}, "--serving-dir 'outputs/serving' is not a remote URI"),
    ({"serving_dir": "s3://models/genre"}, "--serving-dir 's3://models/genre' is not a remote URI"),
    ({"split": "fault-filtered", "split_dir": "/data/splits"}, "--split-dir '/data/splits' is not a remote URI"),
    ({"beam": ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=/tmp/beam"]},
     "--temp_location '/tmp/beam' is not a remote URI"),
    ({"beam": ["--runner=DataflowRunner", "--temp_location=gs://b/t"]}, "DataflowRunner needs --project, --region"),
    ({"beam": ["--direct_num_workers=4"]}, "name no runner"),
])
def test_local_paths_and_incomplete_settings_are_refused(changes, message):
    with pytest.raises(SystemExit) as exit_info:
        runner.kubeflow_config(runner.parse_args(runner_argv(**changes)))
    assert message in str(exit_info.value)


def test_remote_settings_are_accepted():
    config = runner.kubeflow_config(runner.parse_args(runner_argv(
        serving_dir="gs://models/genre/", split="fault-filtered", split_dir="gs://genre-bucket/splits",
        mlflow_uri="postgresql+psycopg2://mlflow@db/mlflow")))
    assert (config.serving_dir, config.split.split_dir) == ("gs://models/genre", "gs://genre-bucket/splits")
    assert config.mlflow_tracking_uri == "postgresql+psycopg2://mlflow@db/mlflow"
    assert config.beam_args == cluster.PRESETS["direct"]  # the config's default, unchanged


@pytest.mark.parametrize("weights", ["gs://genre-bucket/efficientnetb0_notop.h5", "/opt/weights/efficientnetb0_notop.h5"])
def test_backbone_weights_name_the_file_where_the_trainer_runs(weights):
    """Neither file exists on this machine: the Trainer checks it in the image or the bucket."""
    config = runner.kubeflow_config(runner.parse_args(runner_argv(model="efficientnet", backbone_weights=weights)))
    assert config.train.backbone_weights == weights


def test_a_relative_backbone_weights_path_is_refused_on_kubeflow():
    with pytest.raises(SystemExit) as exit_info:
        runner.kubeflow_config(runner.parse_args(runner_argv(model="efficientnet",
                                                             backbone_weights="efficientnetb0_notop.h5")))
    assert "the path the Trainer sees in the image" in str(exit_info.value)


@pytest.mark.parametrize("extra", [["--output-dir", "/tmp/out"], ["--image", "registry.example.com/genre"]])
def test_runner_flags_that_cannot_work_are_refused(extra, capsys):
    with pytest.raises(SystemExit):
        runner.parse_args(BASE_ARGS + extra)
    assert "error:" in capsys.readouterr().err


def test_beam_presets_complete_with_the_image():
    direct, notes = cluster.complete_beam_args(cluster.PRESETS["direct"], IMAGE)
    assert direct == cluster.PRESETS["direct"] and notes == []
    flink, _ = cluster.complete_beam_args(["--runner=FlinkRunner", "--flink_master=flink:8081"], IMAGE)
    assert flink[-2:] == ["--environment_type=DOCKER", f"--environment_config={IMAGE}"]
    external = ["--runner=FlinkRunner", "--flink_master=flink:8081", "--environment_type=EXTERNAL",
                "--environment_config=localhost:50000"]
    assert cluster.complete_beam_args(external, IMAGE)[0] == external
    spark, _ = cluster.complete_beam_args(["--runner=PortableRunner", "--job_endpoint=spark-js:8099"], IMAGE)
    assert f"--environment_config={IMAGE}" in spark
    with pytest.raises(ValueError, match="no runner"):
        cluster.complete_beam_args(["--direct_num_workers=2"], IMAGE)
    with pytest.raises(ValueError, match="--flink_master"):
        cluster.complete_beam_args(["--runner=FlinkRunner"], IMAGE)
    assert "--beam-arg=--runner=DataflowRunner" in runner.build_parser().format_help()


# ----- the image recipe (static: no Docker engine here) -----------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (PROJECT_ROOT / "kubeflow" / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_builds_a_pinned_keras_2_image_of_the_project():
    instructions = dockerfile_instructions()
    froms = [arg for op, arg in instructions if op == "FROM"]
    for base in froms:
        image = base.split()[0]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), base
    final = froms[-1].split()[0]
    assert final == "python:3.11-slim-trixie"  # Debian 13: glibc 2.41 >= 2.39, the TFDV/MLMD wheels install
    assert froms[0].startswith("apache/beam_python3.11_sdk:2.77.0")
    beam_pin = next(line for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
                    if line.startswith("apache-beam=="))
    assert beam_pin == "apache-beam==2.77.0"  # the SDK harness matches the installed Beam

    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "TF_USE_LEGACY_KERAS=1" in env
    assert "PYTHONPATH=/pipeline" in env
    assert ("WORKDIR", "/pipeline") in instructions
    from kubeflow.cluster import IMAGE_PROJECT_ROOT
    assert IMAGE_PROJECT_ROOT == "/pipeline"  # where the runner points ImportSchemaGen

    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "pip install -r requirements.txt -c constraints.txt" in runs
    assert "pip install --no-deps -r requirements-nodeps.txt" in runs
    copies = [arg for op, arg in instructions if op == "COPY"]
    assert "requirements.txt constraints.txt requirements-nodeps.txt ./" in copies
    assert ". /pipeline" in copies
    assert copies.index(". /pipeline") > copies.index("requirements.txt constraints.txt requirements-nodeps.txt ./")
    assert "glibc_compat" not in runs  # trixie needs no workaround


def test_dockerignore_keeps_outputs_and_git_out_of_the_image():
    patterns = {line.strip() for line in (PROJECT_ROOT / "kubeflow" / "Dockerfile.dockerignore").read_text()
                .splitlines() if line.strip() and not line.startswith("#")}
    assert {".git", "outputs", ".venv", "**/__pycache__"} <= patterns
    assert not patterns & {"requirements.txt", "constraints.txt", "schemas", "models", "components", "pipeline"}



# ----- resources, the GPU image, the strategy ------------------------------------------------

GPU_IMAGE = "registry.example.com/genre/genre-pipeline-gpu:1.2.3"
RESOURCES = ["--resources", "Trainer=cpu:8,memory:32,accelerator:NVIDIA_TESLA_T4,count:2",
             "--resources", "Transform=cpu:4,memory:16"]


@pytest.fixture(scope="module")
def gpu_spec(tmp_path_factory) -> dict[str, Any]:
    """A compile with per-step resources, the GPU image and the mirrored strategy, read back from its JSON file."""
    output = tmp_path_factory.mktemp("kubeflow-gpu") / "genre-pipeline.json"
    runner.main(BASE_ARGS + RESOURCES + ["--gpu-image", GPU_IMAGE, "--strategy", "mirrored",
                                         "--mixed-precision", "float16", "--output", str(output)])
    return json.loads(output.read_text())["pipelineSpec"]


def test_the_compiled_spec_carries_each_steps_resources_and_the_gpu_image(gpu_spec):
    trainer = executor(gpu_spec, "Trainer")["container"]
    assert trainer["resources"] == {"cpuLimit": 8.0, "memoryLimit": 32.0,
                                    "accelerator": {"type": "NVIDIA_TESLA_T4", "count": "2"}}
    assert trainer["image"] == GPU_IMAGE
    transform = executor(gpu_spec, "Transform")["container"]
    assert transform["resources"] == {"cpuLimit": 4.0, "memoryLimit": 16.0} and transform["image"] == IMAGE
    for task in COMPONENTS - {"Trainer", "Transform"}:
        container = executor(gpu_spec, task)["container"]
        assert "resources" not in container and container["image"] == IMAGE, task
    train = json.loads(json.loads(parameter(gpu_spec, "Trainer", "custom_config"))["pipeline_config"])["train"]
    assert (train["strategy"], train["mixed_precision"]) == ("mirrored", "float16")


def test_the_default_compile_sets_no_resources(spec):
    assert all("resources" not in e.get("container", {}) for e in spec["deploymentSpec"]["executors"].values())


@pytest.mark.parametrize("extra, message", [
    (["--resources", "Trainer=cpu:8,accelerator:NVIDIA_TESLA_T4"], "cannot use: build kubeflow/Dockerfile.gpu"),
    (["--resources", "Trainer=gpus:2"], "is not one of cpu:VALUE"),
    (["--resources", "Trainer=cpu:0"], "must be above 0"),
    (["--resources", "Trainer=accelerator:RTX_4090,count:1"], "is not one of NVIDIA_TESLA_T4"),
    (["--resources", "Trainer=cpu:2", "--resources", "Trainer=cpu:4"], "names Trainer twice"),
    (["--resources", "Trainer"], "write STEP=cpu:N"),
    (["--gpu-image", "registry.example.com/genre-gpu"], "--gpu-image registry.example.com/genre-gpu has no tag"),
])
def test_resource_flags_that_cannot_work_are_refused(extra, message, capsys):
    with pytest.raises(SystemExit):
        runner.parse_args(BASE_ARGS + extra)
    assert message in capsys.readouterr().err


def test_a_step_that_is_not_in_the_pipeline_is_refused():
    args = runner.parse_args(BASE_ARGS + ["--resources", "Trainr=cpu:8"])
    with pytest.raises(SystemExit, match="Trainr, not a step of the pipeline; steps: .*Trainer"):
        runner.compile_pipeline(runner.kubeflow_config(args), IMAGE, args.step_resources)


# ----- multi-worker training: the Trainer's Vertex AI worker pools ------------------------------

WORKER_POOLS = ["--trainer-workers", "4", "--trainer-machine-type", "n1-standard-16", "--vertex-region",
                "europe-west4", "--vertex-project", "genre-project"]


@pytest.fixture(scope="module")
def worker_pool_spec(tmp_path_factory) -> dict[str, Any]:
    """A compile whose Trainer trains on 4 machines with 2 T4s each, read back from its JSON file."""
    output = tmp_path_factory.mktemp("kubeflow-workers") / "genre-pipeline.json"
    runner.main(BASE_ARGS + WORKER_POOLS + ["--resources", "Trainer=accelerator:NVIDIA_TESLA_T4,count:2",
                                            "--gpu-image", GPU_IMAGE, "--output", str(output)])
    return json.loads(output.read_text())["pipelineSpec"]


def test_the_compiled_trainer_submits_a_vertex_job_of_a_chief_and_worker_pools(worker_pool_spec):
    custom_config = json.loads(parameter(worker_pool_spec, "Trainer", "custom_config"))
    assert custom_config["ai_platform_enable_vertex"] is True
    assert custom_config["ai_platform_vertex_region"] == "europe-west4"
    job = custom_config["ai_platform_training_args"]
    assert job["project"] == "genre-project"
    pools = job["job_spec"]["worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 3]  # the chief, then the other workers
    for pool in pools:
        assert pool["machine_spec"] == {"machine_type": "n1-standard-16", "accelerator_type": "NVIDIA_TESLA_T4",
                                        "accelerator_count": 2}
        assert pool["container_spec"] == {"image_uri": GPU_IMAGE}
    train = json.loads(custom_config["pipeline_config"])["train"]
    assert train["strategy"] == "multi-worker"
    # The step runs TrackedTrainer's Vertex executor (it publishes the MLflow run after the job), in a plain
    # container: its accelerator is the replicas'.
    container = executor(worker_pool_spec, "Trainer")["container"]
    class_path = container["args"][container["args"].index("--executor_class_path") + 1]
    assert class_path == "components.tracked_trainer.vertex_executor.VertexExecutor"
    assert container["image"] == IMAGE and "resources" not in container


def test_worker_pools_without_an_accelerator_run_the_cpu_image():
    args = runner.parse_args(BASE_ARGS + WORKER_POOLS + ["--strategy", "auto"])
    pools = args.worker_pools.worker_pool_specs()
    assert [pool["replica_count"] for pool in pools] == [1, 3]
    assert all(pool["machine_spec"] == {"machine_type": "n1-standard-16"} and
               pool["container_spec"] == {"image_uri": IMAGE} for pool in pools)
    assert args.strategy == "auto"  # finds the cluster in TF_CONFIG as multi-worker does


def test_the_default_compile_trains_in_its_own_step(spec):
    custom_config = json.loads(parameter(spec, "Trainer", "custom_config"))
    assert not any(key.startswith("ai_platform") for key in custom_config)
    args = executor(spec, "Trainer")["container"]["args"]
    assert args[args.index("--executor_class_path") + 1] == "components.tracked_trainer.executor.Executor"


def _with(flag: str, value: str | None) -> list[str]:
    """WORKER_POOLS with ``flag``'s value replaced (None drops the flag)."""
    pairs = dict(zip(WORKER_POOLS[::2], WORKER_POOLS[1::2]))
    pairs[flag] = value
    return [p for f, v in pairs.items() if v is not None for p in (f, v)]


@pytest.mark.parametrize("extra, message", [
    (_with("--trainer-workers", "0"), "--trainer-workers 0: multi-worker training needs 2 or more machines"),
    (_with("--trainer-workers", "1"), "leave out --trainer-workers and give the step its machine with --resources"),
    (_with("--trainer-machine-type", "N1_STANDARD_8"), "--trainer-machine-type 'N1_STANDARD_8' is not a Compute "
                                                        "Engine machine type; write family-series-size"),
    (_with("--trainer-machine-type", "8cpu"), "e.g. n1-standard-8, g2-standard-12 or a2-highgpu-1g"),
    (_with("--vertex-region", None), "--vertex-region is missing: the Trainer's worker pools run as a Vertex AI "
                                     "custom job in one region"),
    (_with("--vertex-region", "Europe West 4"), "--vertex-region 'Europe West 4' is not a region"),
    (_with("--vertex-project", None), "--vertex-project is missing"),
    (["--vertex-region", "europe-west4", "--trainer-machine-type", "n1-standard-8"],
     "--trainer-machine-type, --vertex-region describe the Trainer's Vertex AI worker pools, which only "
     "--trainer-workers N asks for"),
    (WORKER_POOLS + ["--resources", "Trainer=cpu:8,memory:32"], "drop cpu and memory from --resources Trainer"),
    (WORKER_POOLS + ["--gpu-image", GPU_IMAGE, "--resources", "Trainer=accelerator:TPU_V3,count:8"],
     "a TPU trains with --strategy tpu without --trainer-workers"),
    (_with("--trainer-machine-type", "n1-standard-8") + ["--gpu-image", GPU_IMAGE, "--resources",
                                                         "Trainer=accelerator:NVIDIA_L4,count:1"],
     "--trainer-machine-type n1-standard-8 cannot carry NVIDIA_L4 (--resources Trainer=...): Vertex AI attaches it "
     "to g2-* machines; pass one, e.g. --trainer-machine-type g2-standard-8."),
    (WORKER_POOLS + ["--strategy", "mirrored"], "--strategy mirrored cannot train on --trainer-workers' machines"),
    (WORKER_POOLS + ["--resources", "Trainer=accelerator:NVIDIA_TESLA_T4,count:1"],
     "cannot use: build kubeflow/Dockerfile.gpu"),
])
def test_worker_pool_flags_that_cannot_work_are_one_paragraph(extra, message, capsys):
    with pytest.raises(SystemExit):
        runner.parse_args(BASE_ARGS + extra)
    error = capsys.readouterr().err.split("error: ", 1)[1]
    assert message in error and len(error.strip().splitlines()) == 1, error


def test_the_gpu_dockerfile_is_the_cpu_image_plus_tensorflows_cuda_wheels():
    cpu, gpu = ((PROJECT_ROOT / "kubeflow" / name).read_text() for name in ("Dockerfile", "Dockerfile.gpu"))

    def instructions(text):
        logical = re.sub(r"\\\n", " ", text)
        return [" ".join(line.split()) for line in logical.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]

    extra = 'pip install "tensorflow[and-cuda]==2.21.0" -c constraints.txt'
    assert [line.replace(f" && {extra}", "") for line in instructions(gpu)] == instructions(cpu)
    assert extra in " ".join(instructions(gpu))
    assert "tensorflow==2.21.0" in (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
    assert (PROJECT_ROOT / "kubeflow" / "Dockerfile.gpu.dockerignore").read_text().splitlines()[2:] == (
        PROJECT_ROOT / "kubeflow" / "Dockerfile.dockerignore").read_text().splitlines()[2:]

# ----- scheduling --------------------------------------------------------------------------

@pytest.mark.parametrize("cron", ["0 0 3 * * *", "0 30 2 * * MON-FRI", "0 */15 * * * ?", "0 0 0 1,15 JAN-JUN *",
                                  "@daily"])
def test_valid_kfp_crons_pass(cron):
    assert schedule.validate_cron(cron) == cron


@pytest.mark.parametrize("cron, message", [
    ("0 3 * * *", "has 5 fields; KFP needs 6"), ("0 0 24 * * *", "hour '24' is outside 0-23"),
    ("0 60 * * * *", "minute"), ("0 0 0 0 * *", "day of month"), ("0 0 0 * 13 *", "month"),
    ("0 0 0 * * 7", "day of week"), ("0 0 0 * * FUN", "day of week"), ("0 */0 * * * *", "step"),
    ("0 0 3 * * * *", "has 7 fields"),
])
def test_invalid_crons_are_refused(cron, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        schedule.validate_cron(cron)


def test_request_is_built_from_the_compiled_spec(compiled):
    _, job = compiled
    request = schedule.build_request(job, host="http://kfp.example", experiment="genre", cron="0 0 3 * * *",
                                     job_name="genre-nightly", max_concurrency=2, enable_caching=False)
    assert request.pipeline_root == ROOT  # from the compiled runtimeConfig
    assert request.pipeline_name == "genre-pipeline" and request.experiment == "genre"
    assert request.pipeline_version.startswith("genre-pipeline-")
    assert all(t["cachingOptions"]["enableCache"] is False for t in tasks(request.pipeline_spec).values())
    assert all(tasks(job["pipelineSpec"])[name]["cachingOptions"]["enableCache"] is True for name in COMPONENTS)
    overridden = schedule.build_request(job, host=None, experiment="e", cron="@daily", job_name="j",
                                        pipeline_root="gs://other-bucket/root/")
    assert overridden.pipeline_root == "gs://other-bucket/root"
    with pytest.raises(ValueError, match="not a remote URI"):
        schedule.build_request(job, host=None, experiment="e", cron="@daily", job_name="j",
                               pipeline_root="/tmp/root")


def test_dry_run_prints_the_requests_and_sends_nothing(compiled, capsys):
    output, job = compiled
    described = schedule.main(["--spec", str(output), "--dry-run", "--experiment", "genre-prod",
                               "--cron", "0 0 4 * * SUN", "--job-name", "genre-weekly", "--no-caching",
                               "--host", "http://127.0.0.1:9"])  # port 9: nothing listens, nothing is sent
    printed = json.loads(capsys.readouterr().out)
    assert printed == described
    assert printed["experiment"] == {"name": "genre-prod"}
    assert printed["recurring_run"] == {"display_name": "genre-weekly", "cron": "0 0 4 * * SUN",
                                        "max_concurrency": 1, "pipeline_root": ROOT, "no_catchup": True,
                                        "enabled": True}
    upload = printed["upload_pipeline"]
    assert upload["name"] == "genre-pipeline" and upload["images"] == [IMAGE]
    assert set(upload["tasks"]) == set(tasks(job["pipelineSpec"])) and upload["enable_cache"] == [False]
    assert upload["spec_sha256"] == schedule.spec_digest(schedule.with_caching(job["pipelineSpec"], False))


class FakeKfpApi(BaseHTTPRequestHandler):
    """TEST DOUBLE of the KFP v2beta1 REST API: records requests, answers like the server.

    ``state`` (set on the class per test) says whether the pipeline exists already.
    """

    recorded: list[dict[str, Any]] = []
    pipeline_exists = False

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, list[str]], Any]:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: Any = None
        if raw and self.headers.get_content_type() == "multipart/form-data":
            message = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            body = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
                    for part in message.get_payload()}
        elif raw:
            body = json.loads(raw)
        self.recorded.append({"method": self.command, "path": url.path, "query": query, "body": body})
        return url.path, query, body

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path, query, _ = self._record()
        if path == "/apis/v2beta1/healthz":
            self._reply({"multi_user": False})
        elif path == "/apis/v2beta1/pipelines":
            self._reply({"pipelines": [{"pipeline_id": "pipe-1", "display_name": "genre-pipeline"}]}
                        if self.pipeline_exists else {})
        elif path == "/apis/v2beta1/pipelines/pipe-1/versions":
            self._reply({} if "filter" in query else
                        {"pipeline_versions": [{"pipeline_id": "pipe-1", "pipeline_version_id": "ver-1"}]})
        elif path == "/apis/v2beta1/experiments":
            self._reply({})  # no experiment of that name yet
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        path, query, body = self._record()
        if path == "/apis/v2beta1/pipelines/upload":
            self._reply({"pipeline_id": "pipe-1", "display_name": query["name"][0]})
        elif path == "/apis/v2beta1/pipelines/upload_version":
            self._reply({"pipeline_id": "pipe-1", "pipeline_version_id": "ver-2"})
        elif path == "/apis/v2beta1/experiments":
            self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
        elif path == "/apis/v2beta1/recurringruns":
            self._reply({"recurring_run_id": "rr-1", "display_name": body["display_name"]})
        else:
            self.send_error(404)


@pytest.fixture
def fake_kfp():
    """The test double on 127.0.0.1 (an ephemeral port); yields its URL and the recorded requests."""
    FakeKfpApi.recorded = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfpApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", FakeKfpApi.recorded
    finally:
        server.shutdown()
        server.server_close()
        FakeKfpApi.pipeline_exists = False


def posts(recorded: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [r for r in recorded if r["method"] == "POST" and r["path"] == path]


def test_kfp_client_sends_upload_experiment_and_recurring_run(compiled, fake_kfp):
    url, recorded = fake_kfp
    output, job = compiled
    ids = schedule.main(["--spec", str(output), "--host", url, "--experiment", "genre-prod",
                         "--cron", "0 0 3 * * *", "--job-name", "genre-nightly", "--max-concurrency", "2"])
    assert ids == {"pipeline_id": "pipe-1", "pipeline_version_id": "ver-1", "experiment_id": "exp-1",
                   "recurring_run_id": "rr-1"}

    [upload] = posts(recorded, "/apis/v2beta1/pipelines/upload")
    assert upload["query"]["name"] == ["genre-pipeline"]
    uploaded = yaml.safe_load(upload["body"]["uploadfile"])
    assert uploaded == job["pipelineSpec"]  # the bare PipelineSpec, the form KFP's upload accepts
    [experiment] = posts(recorded, "/apis/v2beta1/experiments")
    assert experiment["body"]["display_name"] == "genre-prod"
    [run] = posts(recorded, "/apis/v2beta1/recurringruns")
    assert run["body"]["display_name"] == "genre-nightly"
    assert run["body"]["experiment_id"] == "exp-1"
    assert run["body"]["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert int(run["body"]["max_concurrency"]) == 2  # int64: a string in proto JSON, an int from this client
    assert run["body"]["pipeline_version_reference"] == {"pipeline_id": "pipe-1", "pipeline_version_id": "ver-1"}
    assert run["body"]["runtime_config"]["pipeline_root"] == ROOT
    assert run["body"]["mode"] == "ENABLE" and run["body"]["no_catchup"] is True
    assert "pipeline_spec" not in run["body"]  # the run references the uploaded version


def test_an_existing_pipeline_gets_a_new_version(compiled, fake_kfp):
    url, recorded = fake_kfp
    FakeKfpApi.pipeline_exists = True
    output, _ = compiled
    ids = schedule.main(["--spec", str(output), "--host", url, "--no-caching"])
    assert ids["pipeline_version_id"] == "ver-2"
    assert not posts(recorded, "/apis/v2beta1/pipelines/upload")
    [version] = posts(recorded, "/apis/v2beta1/pipelines/upload_version")
    assert version["query"]["pipelineid"] == ["pipe-1"]
    assert version["query"]["name"][0].startswith("genre-pipeline-")
    uploaded = yaml.safe_load(version["body"]["uploadfile"])
    assert {t["cachingOptions"]["enableCache"] for t in uploaded["root"]["dag"]["tasks"].values()} == {False}
    [run] = posts(recorded, "/apis/v2beta1/recurringruns")
    assert run["body"]["pipeline_version_reference"]["pipeline_version_id"] == "ver-2"


def test_an_unreachable_kfp_host_is_one_paragraph(compiled, capsys):
    """A real connection attempt to a closed port on 127.0.0.1 (nothing listens there)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(SystemExit) as exit_info:
        schedule.main(["--spec", str(compiled[0]), "--host", f"http://127.0.0.1:{closed}"])
    message = str(exit_info.value.code)
    assert message.startswith(f"Cannot reach the Kubeflow Pipelines API at http://127.0.0.1:{closed}")
    assert "Fix: check --host" in message and "Log: " in message
    assert "Traceback" not in message and len(message.splitlines()) <= 4
    assert os.path.exists(message.rsplit("Log: ", 1)[1])


def test_a_missing_spec_or_image_is_one_paragraph():
    with pytest.raises(SystemExit) as missing_spec:
        schedule.main(["--spec", "no-such-spec.json", "--dry-run"])
    assert "Cannot read the compiled spec no-such-spec.json" in str(missing_spec.value.code)
    assert "python -m kubeflow.runner" in str(missing_spec.value.code)
    with pytest.raises(SystemExit) as no_image:
        runner.parse_args([arg for arg in BASE_ARGS if arg not in ("--image", IMAGE)])
    assert "--image is required" in str(no_image.value.code) and "kubeflow/Dockerfile" in str(no_image.value.code)


def test_help_texts_carry_no_developer_markup(capsys):
    for parser in (runner.build_parser(), schedule.build_parser()):
        text = parser.format_help()
        assert ":func:" not in text and ":class:" not in text and "``" not in text, text
