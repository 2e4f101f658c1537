"""Local helper processes on 127.0.0.1: a free port, waiting until one answers its health URL (failing with its
own log, not a bare connection error later), and stopping it even when it does not stop when asked."""
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
                       timeout: float = 120.0) -> None:
    """Return once ``health_url`` answers 200; raise with the log's tail if ``process`` exits or ``timeout`` passes."""
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
        time.sleep(0.3)


def stop_process(process: subprocess.Popen, grace_seconds: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_seconds``: a loaded server can outlive any grace; cleanup must not hang."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
