"""The deployment files parse and agree with each other, with the pipeline and with the venv.

No Docker engine or cluster exists here, so this is what can be checked: every YAML file
loads, images are pinned (and in step with the installed tensorflow / mlflow), ports and
mount paths line up with models.config, the k8s ConfigMap carries models.config verbatim,
every container runs unprivileged (non-root, no privilege escalation, read-only root with a
writable /tmp), and NetworkPolicies admit only labelled clients to TF Serving and MLflow.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from config.settings import PipelineConfig

SERVING = Path(__file__).resolve().parent
ROOT = SERVING.parent
MODEL = "genre"


def _flags(args: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)


@pytest.fixture(scope="module")
def models_config() -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse((SERVING / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((SERVING / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted((SERVING / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc and {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.name}: incomplete object"
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in docs, f"duplicate {key}"
            docs[key] = doc
    return docs


def _pinned(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest" and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{image} is not pinned"
    return tag.lstrip("v")


def test_models_config_serves_the_pushed_model(models_config):
    (model,) = models_config.model_config_list.config
    assert model.name == MODEL and model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1
    # The Pusher's destination is <...>/genre/<version>/: the served base dir has the same name.
    assert Path(model.base_path).name == Path(PipelineConfig().serving_dir).name == MODEL


def test_images_are_pinned_and_in_step_with_the_venv(compose, k8s):
    serving_tag = _pinned(compose["services"]["tf-serving"]["image"])
    tf_major_minor = tuple(int(x) for x in importlib.metadata.version("tensorflow").split(".")[:2])
    # A server older than the exporting TensorFlow may lack ops the SavedModel uses.
    assert tuple(int(x) for x in serving_tag.split(".")[:2]) >= tf_major_minor
    assert _pinned(compose["services"]["mlflow"]["image"]) == importlib.metadata.version("mlflow")
    assert compose["services"]["mlflow-volume-init"]["image"] == compose["services"]["mlflow"]["image"]
    k8s_images = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
                  for (kind, _), d in k8s.items() if kind == "Deployment"}
    assert k8s_images == {"genre-serving": compose["services"]["tf-serving"]["image"],
                          "mlflow": compose["services"]["mlflow"]["image"]}


def test_compose_tf_serving_ports_and_mounts_match_models_config(compose, models_config):
    service = compose["services"]["tf-serving"]
    flags = _flags(service["command"])
    assert service["entrypoint"] == ["tensorflow_model_server"]
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
    published = {int(p.rsplit(":", 1)[1]): int(p.rsplit(":", 2)[-2]) for p in service["ports"]}
    assert published == {8500: 8500, 8501: 8501}
    mounts = {m["target"]: m for m in service["volumes"]}
    base_path = models_config.model_config_list.config[0].base_path
    models = mounts[os.path.dirname(base_path)]
    assert models["read_only"] is True
    # Default source: the parent of PipelineConfig().serving_dir, relative to serving/.
    default = re.fullmatch(r"\$\{GENRE_MODELS_DIR:-(.+)\}", models["source"]).group(1)
    assert (SERVING / default).resolve() == Path(PipelineConfig().serving_dir).parent.resolve()
    config = mounts[flags["model_config_file"]]
    assert config["read_only"] is True and (SERVING / config["source"]).resolve() == SERVING / "models.config"


def test_compose_mlflow_keeps_its_store_on_a_volume(compose):
    service = compose["services"]["mlflow"]
    flags = _flags(service["command"])
    (volume,) = service["volumes"]
    assert volume["type"] == "volume" and volume["source"] in compose["volumes"]
    assert flags["backend-store-uri"].startswith(f"sqlite:///{volume['target']}/")
    assert flags["artifacts-destination"].startswith(f"{volume['target']}/")
    assert service["ports"] == ["127.0.0.1:5000:5000"] and flags["port"] == "5000"


def test_k8s_tf_serving(k8s, compose, models_config):
    config_map = k8s[("ConfigMap", "genre-serving-config")]
    assert config_map["data"]["models.config"] == (SERVING / "models.config").read_text()
    deployment = k8s[("Deployment", "genre-serving")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["tensorflow_model_server"]
    assert container["args"] == compose["services"]["tf-serving"]["command"]  # one set of flags
    flags = _flags(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": int(flags["port"]), "http": int(flags["rest_api_port"])}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    base_path = models_config.model_config_list.config[0].base_path
    models = mounts[os.path.dirname(base_path)]
    assert models["readOnly"] is True
    claim = volumes[models["name"]]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in k8s
    config_mount = mounts[os.path.dirname(flags["model_config_file"])]
    assert volumes[config_mount["name"]]["configMap"]["name"] == "genre-serving-config"
    assert os.path.basename(flags["model_config_file"]) in config_map["data"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": f"/v1/models/{MODEL}", "port": "http"}, probe
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = k8s[("Service", "genre-serving")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["port"]: p["targetPort"] for p in service["spec"]["ports"]} == {8500: "grpc", 8501: "http"}


def test_k8s_mlflow(k8s, compose):
    deployment = k8s[("Deployment", "mlflow")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    flags = _flags(container["args"])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "data"]
    claim = {v["name"]: v for v in pod["volumes"]}[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in k8s
    assert flags["backend-store-uri"].startswith(f"sqlite:///{mount['mountPath']}/")
    assert flags["artifacts-destination"].startswith(f"{mount['mountPath']}/")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = k8s[("Service", "mlflow")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(int(flags["port"]), "http")]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": int(flags["port"])}


# ----- unprivileged containers and network policy ----------------------------------------
def _deployments(k8s: dict) -> dict[str, dict]:
    return {name: doc for (kind, name), doc in k8s.items() if kind == "Deployment"}


def test_k8s_containers_run_unprivileged_with_a_read_only_root(k8s):
    assert set(_deployments(k8s)) == {"genre-serving", "mlflow"}
    for name, deployment in _deployments(k8s).items():
        pod = deployment["spec"]["template"]["spec"]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 0 and context["runAsGroup"] > 0, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert "runAsUser" not in security or security["runAsUser"] > 0, name
            (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]] and not tmp.get("readOnly"), name
    # MLflow writes its store: the pod's group owns the volume.
    mlflow = _deployments(k8s)["mlflow"]["spec"]["template"]["spec"]["securityContext"]
    assert mlflow["fsGroup"] == mlflow["runAsGroup"]


def test_k8s_network_policies_admit_only_labelled_clients_on_the_service_ports(k8s):
    policies = {name: doc for (kind, name), doc in k8s.items() if kind == "NetworkPolicy"}
    assert set(policies) == set(_deployments(k8s))  # one per server
    for name, policy in policies.items():
        spec = policy["spec"]
        labels = _deployments(k8s)[name]["spec"]["template"]["metadata"]["labels"]
        assert spec["podSelector"]["matchLabels"].items() <= labels.items(), name
        assert "Ingress" in spec["policyTypes"]
        service_ports = {p["port"] for p in k8s[("Service", name)]["spec"]["ports"]}
        (rule,) = spec["ingress"]
        assert {p["port"] for p in rule["ports"]} == service_ports
        assert all(p["protocol"] == "TCP" for p in rule["ports"])
        (source,) = rule["from"]  # one source: pods carrying a client label, nothing broader
        assert set(source) == {"podSelector"}, name
        ((key, value),) = source["podSelector"]["matchLabels"].items()
        assert key.startswith("genre-pipeline/") and key.endswith("-client") and value == "true", name
    # TF Serving needs no network of its own: its egress is closed.
    assert policies["genre-serving"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policies["genre-serving"]["spec"]["egress"] == []


def test_compose_services_run_unprivileged_with_a_read_only_root(compose):
    services = compose["services"]
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    for name in ("tf-serving", "mlflow"):  # the long-running servers: a non-root user, a tmpfs /tmp
        uid, gid = services[name]["user"].split(":")
        assert int(uid) > 0 and int(gid) > 0, name
        assert services[name]["tmpfs"] == ["/tmp"], name
    # The one root step: a one-shot chown of MLflow's new volume to MLflow's user, with CHOWN only.
    init = services["mlflow-volume-init"]
    assert init["cap_add"] == ["CHOWN"] and init["restart"] == "no"
    assert init["command"] == ["chown", "-R", services["mlflow"]["user"], services["mlflow"]["volumes"][0]["target"]]
    assert init["volumes"] == services["mlflow"]["volumes"]
    assert services["mlflow"]["depends_on"] == {"mlflow-volume-init": {"condition": "service_completed_successfully"}}


def test_kubeflow_image_runs_as_a_non_root_user():
    text = re.sub(r"\\\n", " ", (ROOT / "kubeflow" / "Dockerfile").read_text())
    instructions = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    final_stage = instructions[max(i for i, (op, _) in enumerate(instructions) if op.upper() == "FROM"):]
    users = [arg.strip() for op, arg in final_stage if op.upper() == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0  # numeric: runAsNonRoot can verify it
    runs = " ".join(arg for op, arg in final_stage if op.upper() == "RUN")
    assert f"useradd --uid {uid} --gid {gid}" in runs
    last_user = max(i for i, (op, _) in enumerate(final_stage) if op.upper() == "USER")
    assert all(op.upper() != "RUN" for op, _ in final_stage[last_user:])  # nothing after it switches back
