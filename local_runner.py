"""Run the genre pipeline locally: LocalDagRunner, SQLite MLMD, DirectRunner Beam.

    python local_runner.py                       # synthetic data set, CNN, to a pushed model
    python local_runner.py --data-root ~/gtzan --split fault-filtered --split-dir splits/ --model vgg
    python local_runner.py --data-root ~/my-music --genres-from-data   # your own genre folders
    python local_runner.py --until validate      # ingest and validate only

Re-running reuses cached component outputs when inputs and settings are unchanged. The console shows progress
lines; everything else goes to <output-dir>/logs/ (--verbose shows it too). One run at a time per output dir.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Beam's multi-processing workers are new interpreters: they must find the project too.
_ROOT = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

import argparse  # noqa: E402
import sys  # noqa: E402

from config.errors import UserError  # noqa: E402  (config sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from local_run.failure import RunFailed, not_started  # noqa: E402
from local_run.run import checked_config, run  # noqa: E402
from pipeline.flags import add_cli_arguments  # noqa: E402

__all__ = ["RunFailed", "main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cli_arguments(parser)
    group = parser.add_argument_group("run")
    group.add_argument("--until", choices=("validate", "train", "push"), default="push",
                       help="stop after data validation, after training, or run to the push (default: %(default)s)")
    group.add_argument("--no-cache", action="store_true", help="re-execute every component")
    group.add_argument("--full", action="store_true", help="rebuild from scratch: ingest, analyse and transform every "
                       "track, embed every segment and train without a warm start, instead of working on what changed "
                       "since the last run (docs/ingestion.md, \"A library that grows\")")
    group.add_argument("--verbose", action="store_true",
                       help="show library output (TensorFlow, Beam, TFX) on the console, not only in the log file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Flags -> config -> run: the run's summary, or RunFailed (a SystemExit) after one paragraph."""
    args = parse_args(argv)
    try:
        config = checked_config(args)  # before TensorFlow: wrong paths fail in a second
    except UserError as error:
        raise not_started(error) from error
    return run(config, until=args.until, enable_cache=not (args.no_cache or args.full), verbose=args.verbose,
               genres_from_data=args.genres_from_data, full=args.full)


if __name__ == "__main__":
    main(sys.argv[1:])
