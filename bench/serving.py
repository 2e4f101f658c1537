"""Serving latency and throughput for one 30-s clip: gRPC through the test double vs in-process.

    python -m bench.serving [--model-dir DIR] [--also DIR3 ...] [--compare DIR2] [--requests 200] [--warmup 10]
    (make bench-serving)

DIR (a TF Serving base dir; default: the push destination) and each DIR3 are measured as pushed; DIR2, a musicnn
or LSTM model, is re-exported with each graph of models/signatures.GRAPHS and measured beside them. Each model:
an in-process ``serving_default`` call, one gRPC client, and two concurrent clients. The gRPC server is the
project's Python TEST DOUBLE of TF Serving, not its C++ server (which cannot run here): its figures bound what the
protocol, the payload and a Python server cost, and say nothing about TF Serving's own overhead.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Optional, Sequence

import numpy as np

from bench.pushed_models import GRAPH_NAMES, export_graphs, load_pushed, newest_version
from bench.report import ROOT, add_no_write, child_env, make_command, publish
from config.local_http import stop_process
from config.settings import PipelineConfig

SERVER_START_TIMEOUT = 300.0  # seconds: TF import plus loading a large SavedModel on 2 cores


def bench_clip(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A deterministic music-like clip (tones plus noise), float32 mono in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0, 440.0))
    return (tones + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def signature_call(version_dir: str, clip: np.ndarray, rate: int) -> Callable[[], object]:
    """A call of VERSION_DIR's ``serving_default`` on CLIP at RATE, its inputs made tensors once."""
    import tensorflow as tf

    fn = tf.saved_model.load(version_dir).signatures["serving_default"]
    waveform, sample_rate = tf.constant(clip), tf.constant(rate, tf.int32)
    return lambda: fn(waveform=waveform, sample_rate=sample_rate)


def concurrent_calls(connect: Callable[[], ContextManager], call: Callable[[object], object], clients: int,
                     requests: int, max_seconds: float) -> tuple[np.ndarray, float]:
    """CLIENTS threads, each with its own connection, share REQUESTS calls; (latencies in ms, wall seconds)."""
    claims, latencies = itertools.count(), []  # next(claims) is atomic under the GIL: no lock needed
    start = time.perf_counter()

    def worker() -> None:
        with connect() as client:
            call(client)  # connect and warm this client outside the figures' count
            while time.perf_counter() - start < max_seconds and next(claims) < requests:
                t0 = time.perf_counter()
                call(client)
                latencies.append((time.perf_counter() - t0) * 1e3)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return np.array(latencies), time.perf_counter() - start


@contextlib.contextmanager
def served_by_test_double(model_dir: str, model_name: str) -> Iterator[str]:
    """Run serving/stand_in_server.py in its own process (as a real server would be); yield host:port."""
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving.stand_in_server", "--model-base", model_dir, "--model-name", model_name,
             "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, env=child_env())
        try:
            ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT)
            line = proc.stdout.readline() if ready else ""
            if " on " not in line:
                log.seek(0)
                raise SystemExit(f"the test server did not start within {SERVER_START_TIMEOUT:.0f} s "
                                 f"(exit code {proc.poll()}):\n{log.read()[-3000:]}")
            yield line.rsplit(" on ", 1)[1].strip()
        finally:
            stop_process(proc)


def interleaved_calls(calls: dict[str, Callable[[], object]], requests: int, warmup: int,
                      max_seconds: float = float("inf")) -> dict[str, np.ndarray]:
    """Warm-up, then timed calls of several paths at once, one call of each in turn, so that the machine's other
    load falls on all of them alike. Per path: one row of (wall ms, CPU ms) per timed call."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    start = time.perf_counter()
    while min(map(len, times.values())) < requests and time.perf_counter() - start < max_seconds * len(calls):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            times[name].append((1e3 * (time.perf_counter() - wall), 1e3 * (time.process_time() - cpu)))
    return {name: np.array(t) for name, t in times.items()}


def compared_models(model_dir: str, compare_dir: Optional[str], transform_dir: Optional[str], pipeline_root: str,
                    tmp: str, also: Sequence[str] = ()) -> dict[str, str]:
    """Label -> TF Serving base dir: MODEL_DIR and ALSO as pushed, COMPARE_DIR's newest re-exported with each graph."""
    models = {f"{_family(base)} (as pushed)": base for base in (model_dir, *also)}
    if compare_dir:
        model, config, _ = load_pushed(compare_dir, transform_dir, pipeline_root)
        for graph, base in export_graphs(model, config, tmp).items():
            models[f"{model.name}, {GRAPH_NAMES[graph]}"] = base
    return models


def _family(model_dir: str) -> str:
    """The outer Keras model's name (its family) from the SavedModel's Keras metadata; "model" where there is none."""
    metadata = Path(model_dir, str(newest_version(model_dir, "genre")), "keras_metadata.pb")
    found = re.search(rb'"class_name": "Functional", "config": \{"name": "(\w+)"',
                      metadata.read_bytes()) if metadata.is_file() else None
    return found.group(1).decode() if found else "model"


def run(models: dict[str, str], model_name: str, requests: int, warmup: int, clip_seconds: float, sample_rate: int,
        clients: int, max_seconds: float) -> str:
    """Measure the three paths for every model (label -> base dir); return the markdown body of the section."""
    load_before = os.getloadavg()[0]
    versions = {label: newest_version(base, model_name) for label, base in models.items()}
    clip = bench_clip(clip_seconds, sample_rate)

    from serving.client import GenreClient

    def wall_ms(calls: dict[str, Callable[[], object]]) -> dict[str, np.ndarray]:
        return {label: t[:, 0] for label, t in interleaved_calls(calls, requests, warmup, max_seconds).items()}

    def predict(client: GenreClient) -> object:
        return client.predict_waveform(clip, sample_rate)

    direct = wall_ms({label: signature_call(os.path.join(base, str(versions[label])), clip, sample_rate)
                      for label, base in models.items()})
    with contextlib.ExitStack() as stack:
        hosts = {label: stack.enter_context(served_by_test_double(base, model_name)) for label, base in models.items()}
        connect = {label: functools.partial(GenreClient, host, model_name, timeout=120.0, retries=0)
                   for label, host in hosts.items()}
        grpc_clients = {label: stack.enter_context(connect[label]()) for label in models}
        for label, client in grpc_clients.items():
            answer = predict(client)
            assert answer.model_version == versions[label], (answer.model_version, versions[label])
        one = wall_ms({label: functools.partial(predict, client) for label, client in grpc_clients.items()})
        many = {label: concurrent_calls(connect[label], predict, clients, requests, max_seconds) for label in models}

    rows = []
    for label in models:
        for path, (ms, wall) in (("direct SavedModel call, in-process", (direct[label], direct[label].sum() / 1e3)),
                                 ("gRPC via the test double, 1 client", (one[label], one[label].sum() / 1e3)),
                                 (f"gRPC via the test double, {clients} concurrent clients", many[label])):
            p50, p99 = np.percentile(ms, [50, 99])
            rows.append(f"| {label} | {path} | {len(ms)} | {p50:.1f} | {p99:.1f} | {len(ms) / wall:.2f} |")
    lines = [
        "Models: " + "; ".join(f"{label}: `{os.path.abspath(base)}/{versions[label]}`" for label, base in models.items())
        + f". Signature `serving_default`. Clip: {clip_seconds:g} s mono float32 at {sample_rate} Hz "
        f"({clip.nbytes / 1e6:.2f} MB of waveform per request), the same clip for every call; {warmup} warm-up calls "
        "per path and model, not counted. The in-process and 1-client rows take one call of each model in turn.",
        "",
        "**The gRPC server here is the project's Python test double (`serving/stand_in_server.py`), not TF Serving's "
        "C++ server**, which cannot run on this machine. The gRPC rows include protobuf encoding, loopback "
        "transfer and the test double's own Python overhead; TF Serving's figures will differ.",
        "", "| model | path | requests | p50 (ms) | p99 (ms) | throughput (clips/s) |", "|---|---|---|---|---|---|",
        *rows, "",
    ]
    for label in models:
        overhead = np.median(one[label]) - np.median(direct[label])
        lines.append(f"- {label}: gRPC overhead at the median (1 client minus direct) {overhead:.1f} ms.")
    graphs = [label for label in models if "(as pushed)" not in label]
    if len(graphs) == 2:
        old, new = graphs
        for name, timings in (("in-process", direct), ("gRPC, 1 client", one)):
            ratio = np.median(timings[old]) / np.median(timings[new])
            lines.append(f"- {name} p50, {old} over {new}: {ratio:.2f}x.")
    lines += ["", f"Client and server share the machine's {os.cpu_count()} cores. Load average (1 min) "
              f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end"
              + (" (idle at the start)." if load_before < 1.0 else
                 ": other processes shared the cores, so compare the rows of this table with each other only.")]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    cfg = PipelineConfig()
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=cfg.serving_dir,
                        help="TF Serving layout base dir: DIR/<version>/saved_model.pb (default: %(default)s)")
    parser.add_argument("--compare", metavar="DIR", help="a musicnn or LSTM base dir whose newest version is also "
                        "measured re-exported with each graph of models/signatures.GRAPHS")
    parser.add_argument("--also", metavar="DIR", action="append", default=[],
                        help="another TF Serving base dir measured as pushed beside --model-dir (repeatable)")
    parser.add_argument("--transform-dir", help="--compare's Transform output (default: the newest under "
                        "--pipeline-root)")
    for flag, kind, default, text in (
            ("--pipeline-root", str, cfg.pipeline_root, ""), ("--model-name", str, "genre", ""),
            ("--requests", int, 200, "timed requests per path "), ("--warmup", int, 10, "untimed requests per path "),
            ("--clip-seconds", float, 30.0, ""), ("--sample-rate", int, cfg.audio.sample_rate, ""),
            ("--clients", int, 2, "concurrent gRPC clients "),
            ("--max-seconds", float, 300.0, "time cap per path; fewer requests are reported if it is hit ")):
        parser.add_argument(flag, type=kind, default=default, help=text + "(default: %(default)s)")
    add_no_write(parser)
    args = parser.parse_args(argv)
    if args.requests < 2 or args.warmup < 0 or args.clients < 1:
        parser.error("need --requests >= 2, --warmup >= 0, --clients >= 1")
    if not os.path.isdir(args.model_dir):
        raise SystemExit(f"No pushed model: {args.model_dir} does not exist. Run the pipeline first (make run) "
                         "so the Pusher writes <serving_dir>/<version>/, or pass --model-dir DIR.")
    if missing := [d for d in args.also if not os.path.isdir(d)]:
        raise SystemExit(f"--also {missing[0]}: no such directory; give a TF Serving base dir (DIR/<version>/).")
    with tempfile.TemporaryDirectory() as tmp:
        models = compared_models(args.model_dir, args.compare, args.transform_dir, args.pipeline_root, tmp, args.also)
        body = run(models, args.model_name, args.requests, args.warmup, args.clip_seconds, args.sample_rate,
                   args.clients, args.max_seconds)
    publish(body, not args.no_write, "serving",
            f"Serving: gRPC (test double) vs in-process SavedModel, {args.clip_seconds:g}-s clip",
            make_command("bench-serving", argv))


if __name__ == "__main__":
    main()
