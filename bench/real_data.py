"""What the real-data benchmarks share: where the clips are, and their common flags."""
from __future__ import annotations

import argparse

from bench.report import add_no_write
from config.settings import MODEL_TYPES, PROJECT_ROOT

DEFAULT_DATA_ROOT = PROJECT_ROOT.parent / "shared" / "data" / "gtzan" / "audio"
DEFAULT_SPLIT_DIR = PROJECT_ROOT.parent / "shared" / "data" / "gtzan" / "splits"


def add_real_data_arguments(parser: argparse.ArgumentParser, output_root_help: str) -> None:
    parser.add_argument("--output-root", default=str(PROJECT_ROOT / "outputs"),
                        help=f"{output_root_help} (default: %(default)s)")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT), help="(default: %(default)s)")
    parser.add_argument("--split-dir", default=str(DEFAULT_SPLIT_DIR), help="(default: %(default)s)")
    add_no_write(parser)


def parse_models(text: str) -> list[str]:
    """The comma-separated --models value, checked against the model families."""
    models = [m.strip() for m in text.split(",") if m.strip()]
    if unknown := [m for m in models if m not in MODEL_TYPES]:
        raise SystemExit(f"Unknown model {unknown[0]!r}; choose from {', '.join(MODEL_TYPES)}.")
    return models
