"""`make mlflow-ui`: open the run's own MLflow tracking store on 127.0.0.1 and print its URL.

A tracking server (`--mlflow-uri http://...`) already has its own UI: this only prints where.

    python scripts/mlflow_ui.py [--mlflow-uri URI] [--port 5000]
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from config.settings import PathsConfig, PipelineConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mlflow-ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlflow-uri", default="", help="tracking URI (default: the run's own SQLite store, "
                        f"{PipelineConfig().mlflow_tracking_uri})")
    parser.add_argument("--output-dir", default="", help="the run's --output-dir, if it was not the default")
    parser.add_argument("--port", type=int, default=5000, help="UI port on 127.0.0.1 (default: %(default)s)")
    args = parser.parse_args(argv)
    uri = args.mlflow_uri or PipelineConfig(paths=PathsConfig(output_dir=args.output_dir)).mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        print(f"{uri} is a tracking server: open {uri} in a browser (it serves its own UI).")
        return 0
    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        print(f"No MLflow store at {uri}: `make run` creates it (or pass ARGS=\"--mlflow-uri URI\").", file=sys.stderr)
        return 1
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    print(f"MLflow UI for {uri}: http://127.0.0.1:{args.port}  (experiment 'genre-pipeline'; plots and "
          "evaluation under each run's Artifacts; Ctrl-C stops it)", flush=True)
    command = [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(args.port),
               "--workers", "1"]
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
