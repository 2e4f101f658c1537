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
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from bench.pushed_models import GRAPH_NAMES, export_graphs, load_pushed, newest_transform_dir, newest_version
from bench.report import ROOT, child_env, make_command, write_section
from config.local_http import stop_process
from config.settings import PipelineConfig

SERVER_START_TIMEOUT = 300.0  # seconds: TF import plus loading a large SavedModel on 2 cores


@dataclass
class Timing:
    name: str
    latencies_ms: np.ndarray
    wall_seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.wall_seconds

    def row(self) -> str:
        p50, p99 = np.percentile(self.latencies_ms, [50, 99])
        return f"| {self.name} | {len(self.latencies_ms)} | {p50:.1f} | {p99:.1f} | {self.throughput:.2f} |"


def bench_clip(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A deterministic music-like clip (tones plus noise), float32 mono in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0, 440.0))
    return (tones + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def concurrent_calls(name: str, make_call: Callable[[], tuple[Callable[[], object], Callable[[], None]]],
                     clients: int, requests: int, max_seconds: float) -> Timing:
    """CLIENTS threads, each with its own connection, share REQUESTS calls."""
    lock, latencies, busy = threading.Lock(), [], [0]  # busy[0]: calls in flight
    start = time.perf_counter()

    def worker() -> None:
        call, close = make_call()
        try:
            call()  # connect and warm this client outside the figures' count
            while time.perf_counter() - start < max_seconds:
                with lock:
                    if len(latencies) + busy[0] >= requests:
                        return
                    busy[0] += 1
                t0 = time.perf_counter()
                call()
                with lock:
                    busy[0] -= 1
                    latencies.append((time.perf_counter() - t0) * 1e3)
        finally:
            close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Timing(name, np.array(latencies), time.perf_counter() - start)


@contextlib.contextmanager
def served_by_test_double(model_dir: str, model_name: str) -> Iterator[str]:
    """Run serving/stand_in_server.py in its own process (as a real server would be); yield host:port."""
    log = tempfile.TemporaryFile(mode="w+")
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
        log.close()


def interleaved_calls(calls: dict[str, Callable[[], object]], requests: int, warmup: int,
                      max_seconds: float) -> dict[str, Timing]:
    """Warm-up, then timed calls of several paths at once, one call of each in turn, so that the machine's other
    load falls on all of them alike. Throughput: calls per second of that path's own call time."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    start = time.perf_counter()
    while min(map(len, latencies.values())) < requests and time.perf_counter() - start < max_seconds * len(calls):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            latencies[name].append((time.perf_counter() - t0) * 1e3)
    return {name: Timing(name, np.array(ms), sum(ms) / 1e3) for name, ms in latencies.items()}


def compared_models(model_dir: str, compare_dir: Optional[str], transform_dir: Optional[str], pipeline_root: str,
                    tmp: str, also: Sequence[str] = ()) -> dict[str, str]:
    """Label -> TF Serving base dir: MODEL_DIR and ALSO as pushed, COMPARE_DIR's newest re-exported with each graph."""
    models = {f"{_family(base)} (as pushed)": base for base in (model_dir, *also)}
    if compare_dir:
        model, config, _ = load_pushed(compare_dir, transform_dir or newest_transform_dir(pipeline_root))
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

    import tensorflow as tf

    from serving.client import GenreClient

    rate, waveform = tf.constant(sample_rate, tf.int32), tf.constant(clip)
    direct_calls = {}
    for label, base in models.items():
        fn = tf.saved_model.load(os.path.join(base, str(versions[label]))).signatures["serving_default"]
        direct_calls[label] = lambda fn=fn: fn(waveform=waveform, sample_rate=rate)
    direct = interleaved_calls(direct_calls, requests, warmup, max_seconds)
    with contextlib.ExitStack() as stack:
        hosts = {label: stack.enter_context(served_by_test_double(base, model_name)) for label, base in models.items()}
        grpc_calls = {}
        for label, host in hosts.items():
            client = stack.enter_context(GenreClient(host, model_name, timeout=120.0, retries=0))
            answer = client.predict_waveform(clip, sample_rate)
            assert answer.model_version == versions[label], (answer.model_version, versions[label])
            grpc_calls[label] = lambda c=client: c.predict_waveform(clip, sample_rate)
        one = interleaved_calls(grpc_calls, requests, warmup, max_seconds)
        many = {}
        for label, host in hosts.items():
            def make_call(host=host):
                c = GenreClient(host, model_name, timeout=120.0, retries=0)
                return (lambda: c.predict_waveform(clip, sample_rate)), c.close

            many[label] = concurrent_calls(label, make_call, clients, requests, max_seconds)

    rows = []
    for label in models:
        for path, timing in (("direct SavedModel call, in-process", direct[label]),
                             ("gRPC via the test double, 1 client", one[label]),
                             (f"gRPC via the test double, {clients} concurrent clients", many[label])):
            timing.name = f"{label} | {path}"
            rows.append(timing.row())
    lines = [
        "Models: " + "; ".join(f"{label}: `{os.path.abspath(base)}/{versions[label]}`" for label, base in models.items())
        + f". Signature `serving_default`. Clip: {clip_seconds:g} s mono float32 at {sample_rate} Hz "
        f"({clip.nbytes / 1e6:.2f} MB of waveform per request), the same clip for every call; {warmup} warm-up calls "
        "per path and model, not counted. The in-process and 1-client rows take one call of each model in turn.",
        "",
        "**The gRPC server here is the project's Python test double (`serving/stand_in_server.py`), not TF Serving's "
        "C++ server**, which cannot run on this machine. The gRPC rows include protobuf encoding, loopback "
        "transfer and the test double's own Python overhead; TF Serving's figures will differ.",
        "",
        "| model | path | requests | p50 (ms) | p99 (ms) | throughput (clips/s) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    for label in models:
        overhead = np.median(one[label].latencies_ms) - np.median(direct[label].latencies_ms)
        lines.append(f"- {label}: gRPC overhead at the median (1 client minus direct) {overhead:.1f} ms.")
    graphs = [label for label in models if "(as pushed)" not in label]
    if len(graphs) == 2:
        old, new = graphs
        for name, timings in (("in-process", direct), ("gRPC, 1 client", one)):
            ratio = np.median(timings[old].latencies_ms) / np.median(timings[new].latencies_ms)
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
    parser.add_argument("--pipeline-root", default=cfg.pipeline_root, help="(default: %(default)s)")
    parser.add_argument("--model-name", default="genre", help="(default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per path (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per path (default: %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="(default: %(default)s)")
    parser.add_argument("--sample-rate", type=int, default=cfg.audio.sample_rate, help="(default: %(default)s)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent gRPC clients (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="time cap per path; fewer requests are reported if it is hit (default: %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print the results without updating BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.requests < 2 or args.warmup < 0 or args.clients < 1:
        parser.error("need --requests >= 2, --warmup >= 0, --clients >= 1")
    if not os.path.isdir(args.model_dir):
        raise SystemExit(f"No pushed model: {args.model_dir} does not exist. Run the pipeline first (make run) "
                         "so the Pusher writes <serving_dir>/<version>/, or pass --model-dir DIR.")
    with tempfile.TemporaryDirectory() as tmp:
        missing = [d for d in args.also if not os.path.isdir(d)]
        if missing:
            raise SystemExit(f"--also {missing[0]}: no such directory; give a TF Serving base dir (DIR/<version>/).")
        models = compared_models(args.model_dir, args.compare, args.transform_dir, args.pipeline_root, tmp, args.also)
        body = run(models, args.model_name, args.requests, args.warmup, args.clip_seconds, args.sample_rate,
                   args.clients, args.max_seconds)
    print(body)
    if not args.no_write:
        write_section("serving", f"Serving: gRPC (test double) vs in-process SavedModel, {args.clip_seconds:g}-s clip",
                      body, command=make_command("bench-serving", argv))


if __name__ == "__main__":
    main()
