"""Training under tf.distribute strategies and mixed precision, each run in Trainer processes of its own.

A tiny real Transform output (tests/distributed_data.py: 12 segments of three synthetic genres, musicnn's
features) is trained by ``models.training.run_fn`` in a subprocess: MirroredStrategy over two logical CPU
devices (configured before TensorFlow starts), two MultiWorkerMirroredStrategy workers on 127.0.0.1, and
mixed precision. Each export's ``from_examples`` signature must answer as the trained model does.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import free_port
from tests import distributed_data

ROOT = Path(__file__).resolve().parent.parent
# The export's transform graph against the features Transform's Beam pass wrote, through the same weights.
EXPORT_ATOL = 1e-4
# A bfloat16 model (8 bits of mantissa) against the float32 evaluation of its weights, on probabilities.
BFLOAT16_ATOL = 0.05
FLOAT16_ATOL = 0.01


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """The Transform output, written by a child process (tests/distributed_data.py says why): this process would
    crash at its exit, after the tests have passed."""
    work = str(tmp_path_factory.mktemp("distributed"))
    done = subprocess.run([sys.executable, distributed_data.__file__, work], env=_child_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child_env() -> dict[str, str]:
    """This process's environment for a child on the project: Keras 2, quiet TensorFlow, no TF_CONFIG inherited."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    env.pop("TF_CONFIG", None)
    return env


def _nice() -> None:
    os.nice(19)


def trainer(data: dict[str, str], work: Path, *, model: str = "cnn", strategy: str = "one",
            precision: str = "none", logical_cpus: int = 0, tf_config: str | None = None,
            name: str = "trainer") -> subprocess.Popen:
    """A Trainer process on the test data; its output (stdout and stderr) goes to ``work``/<name>.log."""
    env = _child_env()
    if tf_config:
        env["TF_CONFIG"] = tf_config
    argv = [sys.executable, str(ROOT / "tests" / "distributed_data.py"), "train",
            "--data", os.path.dirname(data["transform"]), "--out", str(work / "serving" / "1"),
            "--run-dir", str(work / "run"), "--model", model, "--strategy", strategy,
            "--mixed-precision", precision, "--logical-cpus", str(logical_cpus),
            "--mlflow-uri", f"sqlite:///{work / 'mlflow.db'}", "--answers", str(work / "answers.npz")]
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / f"{name}.log", "w")
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_nice, cwd=ROOT)


def finished(process: subprocess.Popen, log: Path, timeout: float = 900) -> str:
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    text = log.read_text()
    assert code == 0, text[-4000:]
    return text


def train_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("[train]")]


def served(export_dir: Path, data: dict[str, str], keys: np.ndarray) -> np.ndarray:
    """The export's from_examples probabilities for the raw examples of ``keys`` ("track#segment")."""
    with open(data["raw"], "rb") as f:
        raw = pickle.load(f)
    signature = tf.saved_model.load(str(export_dir)).signatures["from_examples"]
    assert signature.structured_outputs["probabilities"].dtype == tf.float32
    return signature(examples=tf.constant([raw[key] for key in keys]))["probabilities"].numpy()


@pytest.mark.parametrize("model", ["cnn", "musicnn"])
def test_mirrored_over_two_cpu_devices_trains_and_exports_what_it_trained(model, data, tmp_path):
    log = finished(trainer(data, tmp_path, model=model, strategy="mirrored", logical_cpus=2),
                   tmp_path / "trainer.log")
    lines = "\n".join(train_lines(log))
    assert "strategy mirrored: 2 replica(s) on /device:CPU:0, /device:CPU:1; global batch 4 = 2 per replica x 2" in lines
    if model == "musicnn":  # the frozen body's embeddings, then the head, then fine-tuning, all under the strategy
        assert "head: 1 epochs on the frozen body's embeddings; fine-tuning for up to 1 epochs" in lines
    answers = np.load(tmp_path / "answers.npz")
    np.testing.assert_allclose(served(tmp_path / "serving" / "1", data, answers["keys"]),
                               answers["probabilities"], atol=EXPORT_ATOL, rtol=0)
    assert (tmp_path / "serving" / "mlflow_run_id.txt").read_text()  # the run record


def _reads(log: str) -> dict[str, set[str]]:
    """split -> shard files this worker's log says it read."""
    reads: dict[str, set[str]] = {}
    for match in re.finditer(r"^\[train\] worker \d+ of \d+ reads shards (.+)$", log, re.M):
        for path in match.group(1).split(", "):
            split, name = path.split("/")
            reads.setdefault(split, set()).add(name)
    return reads


def test_two_workers_train_one_model_each_reading_its_own_shards(data, tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [trainer(data, tmp_path / f"worker-{i}", strategy="multi-worker", name="worker",
                       tf_config=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
               for i in range(2)]
    logs = [finished(process, tmp_path / f"worker-{i}" / "worker.log") for i, process in enumerate(workers)]
    assert "worker 0 of 2 (chief)" in logs[0] and "worker 1 of 2;" in logs[1]
    reads = [_reads(log) for log in logs]
    for split in ("train", "eval"):
        first, second = reads[0][split], reads[1][split]
        assert first and second and not first & second, (split, reads)  # disjoint, none idle
        numbers = sorted(int(name.split("-")[1].split(".")[0]) for name in first | second)
        assert numbers == list(range(len(numbers)))  # complete: shard-00000 .. shard-N-1, every one read
    # One model: both workers ended with the same weights (the same answers); only the chief exported.
    chief, other = (np.load(tmp_path / f"worker-{i}" / "answers.npz") for i in range(2))
    np.testing.assert_allclose(chief["probabilities"], other["probabilities"], atol=1e-6)
    assert not (tmp_path / "worker-1" / "serving").exists()
    assert (tmp_path / "worker-0" / "serving" / "mlflow_run_id.txt").read_text()
    assert "MLflow run" in logs[0] and "MLflow run" not in logs[1]
    np.testing.assert_allclose(served(tmp_path / "worker-0" / "serving" / "1", data, chief["keys"]),
                               chief["probabilities"], atol=EXPORT_ATOL, rtol=0)


@pytest.mark.parametrize("precision,policy,atol", [("bfloat16", "mixed_bfloat16", BFLOAT16_ATOL),
                                                   ("float16", "mixed_float16", FLOAT16_ATOL)])
def test_mixed_precision_exports_float32_signatures_answering_as_its_weights(precision, policy, atol, data,
                                                                              tmp_path):
    from models import distribute

    process = trainer(data, tmp_path, precision=precision)
    if distribute.precision_problem(precision):
        # A CPU without AVX-512 BF16/FP16 or AMX (or oneDNN capped below them): a clear refusal before any model.
        process.wait(timeout=900)
        log = (tmp_path / "trainer.log").read_text()
        assert process.returncode != 0
        assert f"This machine cannot train in {precision}" in log and "Fix: train without --mixed-precision" in log
        assert "parameters" not in log  # refused before the model was built
        return
    log = finished(process, tmp_path / "trainer.log")
    assert f"parameters, {policy}" in log
    answers = np.load(tmp_path / "answers.npz")
    assert str(answers["policy"]) == policy
    exported = served(tmp_path / "serving" / "1", data, answers["keys"])
    # The export is the float32 evaluation of the trained weights ...
    np.testing.assert_allclose(exported, answers["float32"], atol=EXPORT_ATOL, rtol=0)
    # ... and the mixed-precision model itself answers within its precision of it.
    np.testing.assert_allclose(answers["probabilities"], answers["float32"], atol=atol, rtol=0)


def test_a_seed_repeats_a_run_exactly_with_the_default_strategy(data, tmp_path):
    runs = [trainer(data, tmp_path / f"run-{k}") for k in range(2)]
    for k, process in enumerate(runs):
        assert "strategy one: 1 replica(s) on default device" in finished(process, tmp_path / f"run-{k}" / "trainer.log")
    first, second = (np.load(tmp_path / f"run-{k}" / "answers.npz") for k in range(2))
    np.testing.assert_array_equal(first["probabilities"], second["probabilities"])
