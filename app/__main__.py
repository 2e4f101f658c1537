"""`python -m app` (`make app`): start the page on 127.0.0.1 and print its URL.

    python -m app [--host 127.0.0.1:8500] [--model genre] [--mlflow-uri URI] [--port 8501] [--address IP]
"""
from __future__ import annotations

import argparse
import os
import sys

from app.settings import (DEFAULT_HOST, DEFAULT_MAX_SECONDS, DEFAULT_MODEL, HOST_ENV, MLFLOW_ENV, MODEL_ENV,
                          AppSettings, upload_limit_mb)

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.py")


def streamlit_command(port: int, address: str = "127.0.0.1", max_seconds: float = DEFAULT_MAX_SECONDS) -> list[str]:
    """The `streamlit run` command line for the page; the upload limit fits the page's clip cap."""
    return [sys.executable, "-m", "streamlit", "run", PAGE, "--server.address", address, "--server.port",
            str(port), "--server.maxUploadSize", str(upload_limit_mb(max_seconds)), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--client.toolbarMode", "viewer"]


def page_env(settings: AppSettings) -> dict[str, str]:
    """This environment with SETTINGS, and the repository on PYTHONPATH, for a page process."""
    root = os.path.dirname(os.path.dirname(PAGE))
    return {**os.environ, **settings.to_env(),
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get(HOST_ENV, DEFAULT_HOST),
                        help=f"TF Serving gRPC address (env {HOST_ENV}; default: %(default)s)")
    parser.add_argument("--model", default=os.environ.get(MODEL_ENV, DEFAULT_MODEL),
                        help=f"served model name (env {MODEL_ENV}; default: %(default)s)")
    parser.add_argument("--mlflow-uri", default=os.environ.get(MLFLOW_ENV, ""),
                        help=f"MLflow tracking URI for the model card (env {MLFLOW_ENV}; default: the run's "
                             "own store, sqlite under the pipeline root)")
    parser.add_argument("--port", type=int, default=8501, help="page port (default: %(default)s)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="interface to listen on (default: %(default)s; 0.0.0.0 only inside a container)")
    args = parser.parse_args(argv)
    settings = AppSettings.from_env({HOST_ENV: args.host, MODEL_ENV: args.model, MLFLOW_ENV: args.mlflow_uri,
                                     **{k: v for k, v in os.environ.items() if k.startswith("GENRE_APP_")}})
    print(f"Genre page: http://{args.address}:{args.port}  (model '{settings.model}' at {settings.host}; "
          f"MLflow {settings.mlflow_uri}; Ctrl-C stops it)", flush=True)
    command = streamlit_command(args.port, args.address, settings.max_seconds)
    os.execvpe(command[0], command, page_env(settings))


if __name__ == "__main__":
    main()
