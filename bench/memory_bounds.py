"""Peak memory at each door on hostile input: the client, the page's decode path, the test double.

    python -m bench.memory_bounds [--model-dir DIR]      (make bench-memory)

Each measurement runs in a child process and reads its peak resident memory (the test double's ``VmHWM``, serving the pushed model).
Inputs: 2-hour WAV and MP3 files and an 82-byte Predict request declaring a 1 GB waveform; for comparison, the
unbounded paths as they were (whole-file ``soundfile.read``, ``tf.make_ndarray``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.pushed_models import newest_version
from bench.report import ROOT, child_env, write_section
from config.settings import PipelineConfig

HOURS = 2
LIMIT_MB = 1024

CLIENT = """
from serving.protos import skip_tensorflow_runtime; skip_tensorflow_runtime()
from serving.client import GenreClient
from serving.audio_file import AudioTooLongError
try:
    GenreClient("127.0.0.1:1", retries=0).predict_file(PATH)
    outcome = "sent"
except AudioTooLongError as err:
    outcome = "refused: " + str(err).split(": ")[0].split(" is ")[-1]
"""
PAGE = """
from serving.protos import skip_tensorflow_runtime; skip_tensorflow_runtime()
from app.clip import ClipError, decode
data = open(PATH, "rb").read()  # what Streamlit hands the page: the upload's bytes
try:
    decode(os.path.basename(PATH), data, 600.0)
    outcome = "decoded"
except ClipError as err:
    outcome = "refused: " + str(err).split(",")[0]
"""
OLD_CLIENT = """
import soundfile as sf
samples, rate = sf.read(PATH, dtype="float32", always_2d=True)  # the client's reader before the header check
mono = samples.mean(axis=1, dtype="float32")
outcome = f"decoded {mono.size / rate / 60:.0f} min"
"""
OLD_DOUBLE = """
import tensorflow as tf
from bench.memory_bounds import oversized_request
value = tf.make_ndarray(oversized_request().inputs["waveform"])  # the test double's step before the check
outcome = f"expanded to {value.nbytes / 2**30:.2f} GiB"
"""
WRAPPER = """
import os, resource, sys
PATH = sys.argv[1]
{body}
print(outcome)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def oversized_request(elements: int = 250_000_000):
    """A Predict request of 82 bytes declaring a waveform of ELEMENTS float32 values (1 GB by default), in
    TensorFlow's short form (one ``float_val`` stands for the whole tensor): a server must refuse it from the
    declared shape, before expanding it."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "genre"
    request.model_spec.signature_name = "serving_default"
    request.inputs["waveform"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, float_val=[0.1],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=elements)])))
    request.inputs["sample_rate"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[22050]))
    return request


def child(body: str, path: str = "") -> tuple[str, int]:
    """(outcome line, peak RSS in MiB) of BODY run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", WRAPPER.format(body=textwrap.dedent(body)), path], env=child_env(),
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip().splitlines()
    return out[-2], int(out[-1])


def make_inputs(folder: Path) -> tuple[Path, Path]:
    wav, mp3 = folder / "two-hours.wav", folder / "two-hours.mp3"
    minute = (0.3 * np.sin(np.arange(44100 * 60) * 0.05) * 32767).astype(np.int16)
    with sf.SoundFile(wav, "w", 44100, 2, subtype="PCM_16") as f:
        for _ in range(HOURS * 60):
            f.write(np.stack([minute, minute], axis=1))
    tone = (0.3 * np.sin(np.arange(16000 * 60) * 0.05)).astype(np.float32)
    with sf.SoundFile(mp3, "w", 16000, 1, format="MP3", subtype="MPEG_LAYER_III") as f:
        for _ in range(HOURS * 60):
            f.write(tone)
    return wav, mp3


def server_peak(model_base: Path) -> tuple[str, int, int]:
    """(outcome, VmHWM after start-up and one good request, VmHWM after the oversized request) in MiB."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from serving.client import GenreClient
    from synthetic.generator import render_track

    server = subprocess.Popen([sys.executable, "-m", "serving.stand_in_server", "--model-base", str(model_base),
                               "--port", "0"], env=child_env(), stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        host = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        with GenreClient(host, timeout=120) as client:
            client.predict_waveform(render_track("rock", 0, 30.0, 22050), 22050)
        before = _hwm(server.pid)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(host))
        try:
            stub.Predict(oversized_request(), timeout=600)
            outcome = "answered"
        except grpc.RpcError as err:
            outcome = f"{err.code().name}: {err.details()[:60]}..."
        return outcome, before, _hwm(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_bounds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="TF Serving layout base dir the test double serves (default: the push "
                        "destination; run `make run` first)")
    model_base = parser.parse_args(argv).model_dir or PipelineConfig().serving_dir
    version = newest_version(model_base, "genre")
    load_before = os.getloadavg()
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wav, mp3 = make_inputs(folder)
        for name, body, path in (("client `predict_file`", CLIENT, wav), ("client `predict_file`", CLIENT, mp3),
                                 ("page decode path (`app.clip.decode`)", PAGE, mp3)):
            outcome, peak = child(body, str(path))
            rows.append((name, f"2-hour {path.suffix[1:].upper()} ({path.stat().st_size / 2**20:.0f} MiB)",
                         outcome, peak, "bounded"))
        outcome, before, after = server_peak(Path(model_base))
        rows.append(("test double (`serving/stand_in_server.py`)", "Predict declaring [250000000] float32 (82 bytes)",
                     f"{outcome} (peak after start-up with the pushed model, version {version}, and one 30-s "
                     f"request: {before} MiB)", after, "bounded"))
        outcome, peak = child(OLD_CLIENT, str(wav))
        rows.append(("client reader before the header check (comparison)", "2-hour WAV", outcome, peak, "unbounded"))
        outcome, peak = child(OLD_DOUBLE)
        rows.append(("`tf.make_ndarray` of the request (comparison)", "Predict declaring [250000000]", outcome, peak,
                     "unbounded"))
    load_after = os.getloadavg()
    lines = ["| door | input | outcome | peak RSS (MiB) | path |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    bounded = [r for r in rows if r[4] == "bounded"]
    verdict = "every bounded door stayed under" if all(r[3] < LIMIT_MB for r in bounded) else "NOT all under"
    body = "\n".join(lines) + (
        f"\n\nPeak resident memory of the process at the door (`ru_maxrss` of a fresh child process; the test "
        f"double's `VmHWM`, which includes TensorFlow and the loaded model). Bounded doors: {verdict} "
        f"{LIMIT_MB} MiB. Load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f}; "
        f"{time.time() - started:.0f} s wall.\n")
    print(body)
    write_section("memory-bounds", "Memory at the doors: 2-hour files and an oversized declared shape", body,
                  "make bench-memory")


if __name__ == "__main__":
    main()
