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
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.pushed_models import newest_version
from bench.report import ROOT, child_env, publish
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


def oversized_request():
    """A Predict request of 82 bytes declaring a 1 GB waveform (250,000,000 float32) in TensorFlow's short form (one
    ``float_val`` stands for the whole tensor): a server must refuse it from the declared shape, before expanding it."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "genre"
    request.model_spec.signature_name = "serving_default"
    request.inputs["waveform"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, float_val=[0.1],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=250_000_000)])))
    request.inputs["sample_rate"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[22050]))
    return request


def child(body: str, path: str = "") -> tuple[str, int]:
    """(outcome line, peak RSS in MiB) of BODY run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", WRAPPER.format(body=body), path], env=child_env(),
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip().splitlines()
    return out[-2], int(out[-1])


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """A 2-hour tone as 44.1 kHz stereo 16-bit WAV and as 16 kHz mono MP3, written a minute at a time."""
    wav, mp3 = folder / "two-hours.wav", folder / "two-hours.mp3"
    for path, rate, channels, kind in ((wav, 44100, 2, {"subtype": "PCM_16"}),
                                       (mp3, 16000, 1, {"format": "MP3", "subtype": "MPEG_LAYER_III"})):
        minute = np.repeat((0.3 * np.sin(np.arange(rate * 60) * 0.05)).astype(np.float32)[:, None], channels, axis=1)
        with sf.SoundFile(path, "w", rate, channels, **kind) as f:
            for _ in range(HOURS * 60):
                f.write(minute)
    return wav, mp3


def server_peak(model_base: str) -> tuple[str, int, int]:
    """(outcome, VmHWM after start-up and one good request, VmHWM after the oversized request) in MiB."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from bench.scale import descendants, status_kib
    from bench.serving import served_by_test_double
    from serving.client import GenreClient
    from synthetic.generator import render_track

    with served_by_test_double(model_base, "genre") as host:
        server, = descendants(os.getpid())  # the test double is this process's only child
        with GenreClient(host, timeout=120) as client:
            client.predict_waveform(render_track("rock", 0, 30.0, 22050), 22050)
        before = status_kib(server, "VmHWM") // 1024
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(host))
        try:
            stub.Predict(oversized_request(), timeout=600)
            outcome = "answered"
        except grpc.RpcError as err:
            outcome = f"{err.code().name}: {err.details()[:60]}..."
        after = status_kib(server, "VmHWM") // 1024
        if not after:
            raise SystemExit(f"the test double is gone after the oversized request ({outcome})")
        return outcome, before, after


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_bounds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="TF Serving layout base dir the test double serves (default: the push "
                        "destination; run `make run` first)")
    model_base = parser.parse_args(argv).model_dir or PipelineConfig().serving_dir
    version = newest_version(model_base, "genre")
    load_before, started = os.getloadavg()[0], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        wav, mp3 = make_inputs(Path(tmp))
        rows = [(name, f"2-hour {path.suffix[1:].upper()} ({path.stat().st_size / 2**20:.0f} MiB)",
                 *child(body, str(path)), "bounded")
                for name, body, path in (("client `predict_file`", CLIENT, wav), ("client `predict_file`", CLIENT, mp3),
                                         ("page decode path (`app.clip.decode`)", PAGE, mp3))]
        outcome, before, after = server_peak(model_base)
        rows += [("test double (`serving/stand_in_server.py`)", "Predict declaring [250000000] float32 (82 bytes)",
                  f"{outcome} (peak after start-up with the pushed model, version {version}, and one 30-s "
                  f"request: {before} MiB)", after, "bounded"),
                 ("client reader before the header check (comparison)", "2-hour WAV", *child(OLD_CLIENT, str(wav)),
                  "unbounded"),
                 ("`tf.make_ndarray` of the request (comparison)", "Predict declaring [250000000]", *child(OLD_DOUBLE),
                  "unbounded")]
    lines = ["| door | input | outcome | peak RSS (MiB) | path |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    under = all(peak < LIMIT_MB for _, _, _, peak, path in rows if path == "bounded")
    verdict = "every bounded door stayed under" if under else "NOT all under"
    body = "\n".join(lines) + (
        f"\n\nPeak resident memory of the process at the door (`ru_maxrss` of a fresh child process; the test "
        f"double's `VmHWM`, which includes TensorFlow and the loaded model). Bounded doors: {verdict} "
        f"{LIMIT_MB} MiB. Load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}; "
        f"{time.time() - started:.0f} s wall.\n")
    publish(body, True, "memory-bounds", "Memory at the doors: 2-hour files and an oversized declared shape",
            "make bench-memory")


if __name__ == "__main__":
    main()
