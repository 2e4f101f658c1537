"""``python -m serving.client`` end to end: a real subprocess talking gRPC to the test double.

Only TF Serving is replaced (by serving/stand_in_server.py, which cannot be avoided here: no
binary, no Docker); the model is the contract-honouring stand-in from tests/testkit/serving.py.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from config.settings import GENRES
from tests.testkit.serving import build_stand_in_model, stand_in_clip, tls_serving_endpoint

ROOT = Path(__file__).resolve().parent.parent
RATE = 22050


def run_cli(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, *python_flags, "-m", "serving.client", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.fixture(scope="module")
def reggae_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "reggae.wav"
    sf.write(path, stand_in_clip("reggae", seconds=9, sample_rate=RATE), RATE, subtype="PCM_16")
    return path


def test_predict_prints_the_genre_and_a_sorted_table(host, reggae_wav):
    done = run_cli("predict", str(reggae_wav), "--host", host, "--model", "genre")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"{reggae_wav}: reggae") and "model version 1" in lines[0]
    table = [line.split() for line in lines[1:]]
    assert [row[0] for row in table][0] == "reggae" and sorted(row[0] for row in table) == sorted(GENRES)
    scores = [float(row[1]) for row in table]
    assert scores == sorted(scores, reverse=True)


def test_predict_json_and_explicit_version(host, reggae_wav):
    done = run_cli("predict", str(reggae_wav), "--host", host, "--version", "1", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["genre"] == "reggae" and answer["model_version"] == 1 and answer["num_segments"] == 3
    assert list(answer["scores"])[0] == "reggae" and len(answer["scores"]) == len(GENRES)


def test_status_lists_available_versions(host):
    done = run_cli("status", "--host", host, "--model", "genre")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "model genre version 1: AVAILABLE"


def test_cli_never_loads_the_tensorflow_runtime(host):
    done = run_cli("status", "--host", host, python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "tensorflow_serving.apis.predict_pb2" in imported  # the protos are there ...
    assert "tensorflow.core.framework.tensor_pb2" in imported
    assert not any(m.startswith("tensorflow.python") for m in imported)  # ... the TF runtime is not


def test_clear_errors(host, tmp_path):
    done = run_cli("predict", str(tmp_path / "missing.wav"), "--host", host)
    assert done.returncode == 1 and "error: audio file not found:" in done.stderr and "missing.wav" in done.stderr
    assert "Traceback" not in done.stderr

    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"OggS but not really")
    done = run_cli("predict", str(bad), "--host", host)
    assert done.returncode == 1 and "cannot decode audio file" in done.stderr and "bad.ogg" in done.stderr

    short = tmp_path / "short.wav"  # 1 s: shorter than one segment, refused by the model itself
    # A tone: a constant would be refused as silent first (levels.py removes the DC offset).
    sf.write(short, 0.3 * np.sin(np.arange(RATE, dtype=np.float32)), RATE, subtype="PCM_16")
    done = run_cli("predict", str(short), "--host", host)
    assert done.returncode == 1
    assert "INVALID_ARGUMENT" in done.stderr and "shorter than one 3-s segment" in done.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{s.getsockname()[1]}"
    done = run_cli("status", "--host", nobody, "--retries", "1", "--timeout", "2")
    assert done.returncode == 1 and nobody in done.stderr
    assert "docker compose -f serving/docker-compose.yml up -d" in done.stderr

    done = run_cli("predict", "x.wav", "--timeout", "0")
    assert done.returncode == 1 and "timeout must be positive" in done.stderr


def test_predict_over_tls_with_a_client_certificate(tmp_path, reggae_wav):
    build_stand_in_model(tmp_path / "genre", version=1)
    with tls_serving_endpoint(tmp_path / "genre", tmp_path / "tls") as (target, files):
        done = run_cli("predict", str(reggae_wav), "--host", target, "--json", "--tls", "--ca-cert", files["ca_cert"],
                       "--client-cert", files["client_cert"], "--client-key", files["client_key"])
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["genre"] == "reggae"
        done = run_cli("status", "--host", target, "--retries", "0", "--timeout", "5")  # plaintext to a TLS port
        assert done.returncode == 1 and "UNAVAILABLE" in done.stderr and "--tls" not in done.stderr
    done = run_cli("status", "--ca-cert", files["ca_cert"])
    assert done.returncode == 1 and "error: --ca-cert only apply with --tls" in done.stderr
