"""Local helper processes on 127.0.0.1: a free port, waiting until one answers its health URL, stopping it.

The web page (app/browser.py), the MLflow server fixture (conftest.py), the serving test double's
fixtures and the benchmarks start servers as child processes; each must wait until the server answers,
and fail with the server's own log when it dies or never does, instead of a bare connection error later;
and each must stop it afterwards even when it does not stop when asked.
"""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A port nobody listens on now (the OS picks it), so tests and benches never clash."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(health_url: str, process: subprocess.Popen, log_path: str | Path, what: str,
                       timeout: float = 120.0, poll: float = 0.3) -> None:
    """Return once ``health_url`` answers 200; raise with the tail of ``log_path`` if ``process``
    exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start; log {log_path}:\n{Path(log_path).read_text()[-3000:]}")
        time.sleep(poll)


def stop_process(process: subprocess.Popen, grace_seconds: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``grace_seconds``.

    Why: on a loaded machine a server can outlive any grace period (the serving test double's worker
    threads finish predictions already running in TensorFlow); stopping it is cleanup, and must
    neither hang nor turn that wait into an error.
    """
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
