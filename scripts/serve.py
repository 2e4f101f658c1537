"""`make serve`: serve the latest pushed model on 127.0.0.1:8500 for the page and the client.

With a Docker engine, TF Serving itself (service `tf-serving` of serving/docker-compose.yml); without one, the
project's TF Serving test double (`python -m serving.stand_in_server`, same gRPC API). It says which it started.

    python scripts/serve.py [--serving-dir outputs/serving/genre] [--port 8500] [--model-name genre] [--no-docker]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from config.settings import PipelineConfig  # noqa: E402
from serving.layout import pushed_versions  # noqa: E402

COMPOSE_FILE = os.path.join(ROOT, "serving", "docker-compose.yml")


def docker_engine() -> bool:
    """A docker CLI whose engine answers (a CLI alone is not enough)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving-dir", default=PipelineConfig().serving_dir,
                        help="push destination, <dir>/<version>/saved_model.pb (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port on 127.0.0.1 (default: %(default)s)")
    parser.add_argument("--model-name", default="genre", help="model name clients ask for (default: %(default)s)")
    parser.add_argument("--no-docker", action="store_true", help="use the test double even where Docker runs")
    args = parser.parse_args(argv)
    serving_dir = os.path.abspath(args.serving_dir)
    versions = pushed_versions(serving_dir)
    if not versions:
        print(f"No pushed model in {serving_dir} (expected <version>/saved_model.pb). Train and push one with "
              "`make run`, or pass ARGS=\"--serving-dir DIR\".", file=sys.stderr)
        return 1
    if not args.no_docker and docker_engine():
        if os.path.basename(serving_dir) != args.model_name:
            print(f"TF Serving's compose service serves <models>/{args.model_name}/; {serving_dir} is not named "
                  f"'{args.model_name}'.", file=sys.stderr)
            return 1
        print(f"Docker engine found: TF Serving (serving/docker-compose.yml, service tf-serving) serves "
              f"{serving_dir}, latest version {versions[-1]}, on 127.0.0.1:8500 (compose's port). Ctrl-C stops it.",
              flush=True)
        env = {**os.environ, "GENRE_MODELS_DIR": os.path.dirname(serving_dir)}
        command = ["docker", "compose", "-f", COMPOSE_FILE, "up", "tf-serving"]
    else:
        print(f"{'Asked for' if args.no_docker else 'No Docker engine'}: serving with the project's TF Serving "
              "TEST DOUBLE (serving/stand_in_server.py, same "
              f"gRPC API, not for production) from {serving_dir}, latest version {versions[-1]}, on "
              f"127.0.0.1:{args.port}. Ctrl-C stops it.", flush=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
        command = [sys.executable, "-m", "serving.stand_in_server", "--model-base", serving_dir, "--model-name",
                   args.model_name, "--host", "127.0.0.1", "--port", str(args.port)]
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main())
