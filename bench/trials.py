"""Train one setting on a pipeline root's Transform output and score its eval and test splits.

    python -m bench.trials --output-dir outputs/real-cnn --model lstm --set train.class_balance=1 \\
        --seeds 42,43 [--builder FILE.py:FUNCTION] [--label NAME]

The loop behind the comparisons in docs/model-selection.md: it trains with the Trainer's own code
(``models.training.train_model``) on the newest Transform output in ``--output-dir`` (running the real
pipeline up to a one-step Trainer first if there is none, as ``make bench-training`` does), so trying a
setting costs the training alone: no ExampleGen, Transform, Evaluator or export, and an edit of
``models/*.py`` does not re-run Transform as it would in the pipeline. ``--builder`` trains a model
function from a file in place of the family's (an architecture not in the tree).

Each run prints and appends one JSON line to ``<output-dir>/trials.jsonl``: the settings, seed, epochs,
segment and clip (soft-vote) accuracy on the eval split (the split settings are chosen on) and on the
test split (recorded, never used to choose), and the test clips correct per genre. The transformed
features are those the exported model computes (tests/test_pipeline_e2e.py checks they agree), but the
figures are not the pipeline's: ``make bench-accuracy`` measures the chosen settings end to end.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

from bench.accuracy import number_or_text  # noqa: E402
from bench.real_data import add_real_data_arguments  # noqa: E402
from config.settings import MODEL_TYPES, PipelineConfig  # noqa: E402

SECTIONS = ("train", "features")


def parse_value(text: str, current: Any) -> Any:
    """``text`` as the type of the setting's current value (None: a number if it reads as one)."""
    if text == "None":
        return None
    if isinstance(current, bool):
        if text not in ("True", "False"):
            raise SystemExit(f"--set expects True or False for a yes/no setting, got {text!r}.")
        return text == "True"
    if isinstance(current, (int, float, str)):
        return type(current)(text)
    return number_or_text(text)


def apply_settings(config: PipelineConfig, settings: list[str]) -> PipelineConfig:
    """``["train.class_balance=1", ...]`` applied to a copy of ``config`` (train and features sections)."""
    for setting in settings:
        key, sep, text = setting.partition("=")
        section, _, name = key.partition(".")
        if not sep or section not in SECTIONS:
            raise SystemExit(f"--set expects SECTION.NAME=VALUE with SECTION in {', '.join(SECTIONS)}, got {setting!r}.")
        current = getattr(config, section)
        if name not in {f.name for f in dataclasses.fields(current)}:
            raise SystemExit(f"--set: no setting {key!r}.")
        config = dataclasses.replace(config, **{section: dataclasses.replace(
            current, **{name: parse_value(text, getattr(current, name))})})
    return config


def load_builder(spec: str) -> Callable:
    """``path/to/file.py:function`` -> the function (a model builder with the families' signature)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        raise SystemExit(f"--builder expects FILE.py:FUNCTION, got {spec!r}.")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def run_trial(config: PipelineConfig, graph_uri: str, examples_uri: str) -> dict:
    """Train ``config`` on the Transform output; eval and test scores as a JSON-ready dict."""
    import mlflow
    import tensorflow_transform as tft
    import tf_keras as keras

    from models import metrics, training

    keras.backend.clear_session()
    tft_output = tft.TFTransformOutput(graph_uri)
    files = {split: os.path.join(examples_uri, f"Split-{split}", "*") for split in ("train", "eval", "test")}
    started = time.time()
    with tempfile.TemporaryDirectory() as run_dir:
        mlflow.set_tracking_uri(f"sqlite:///{run_dir}/mlflow.db")  # the epoch logger's metrics go nowhere lasting
        shards = training.split_shards(tft_output, os.path.join(run_dir, "scratch"), **files)
        with mlflow.start_run():
            model, history = training.train_model(config, tft_output, files["train"], shards["train"],
                                                  shards["eval"], run_dir)
        seconds = time.time() - started
        result: dict = {"epochs": len(history.get("loss", [])), "train_seconds": round(seconds)}
        for split in ("eval", "test"):
            probs, labels, tracks = training.predict_split(model, training.make_dataset(
                shards[split], tft_output, config, training=False, with_track_ids=True))
            result[split] = _split_result(metrics.score(tracks, probs, labels), config)
    return result


def _split_result(scores, config: PipelineConfig) -> dict:
    """One split's line of trials.jsonl: accuracies and, per genre with clips, [right, clips]."""
    return {"segment_accuracy": scores.segment_accuracy, "clip_accuracy": scores.clip_accuracy,
            "clips": scores.clips, "per_genre": {
                g: [int(scores.clip_confusion[i, i]), int(scores.clip_confusion[i].sum())]
                for i, g in enumerate(config.genres) if scores.clip_confusion[i].sum()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trials", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, help="pipeline root folder (--output-dir of local_runner)")
    parser.add_argument("--model", choices=MODEL_TYPES, required=True)
    parser.add_argument("--set", action="append", default=[], dest="settings", metavar="SECTION.NAME=VALUE",
                        help="change a train or features setting of the model's preset; repeatable")
    parser.add_argument("--seeds", default="42", help="comma-separated (default: %(default)s)")
    parser.add_argument("--builder", help="FILE.py:FUNCTION to build the model instead of the family's")
    parser.add_argument("--label", default="", help="name of this setting in trials.jsonl")
    add_real_data_arguments(parser, "unused here")
    args = parser.parse_args(argv)

    from bench.training import prepare
    from models import registry

    output_dir = Path(args.output_dir).resolve()
    graph_uri, examples_uri = prepare(args.model, output_dir, args.data_root, args.split_dir,
                                      output_dir / "trials-prepare.log")
    if args.builder:
        registry.BUILDERS[args.model] = load_builder(args.builder)
    base = apply_settings(PipelineConfig().with_model(args.model), args.settings)
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        config = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed))
        result = {"label": args.label, "model": args.model, "settings": args.settings, "builder": args.builder,
                  "seed": seed, "transform": examples_uri, **run_trial(config, graph_uri, examples_uri)}
        line = json.dumps(result, sort_keys=True)
        print(f"[trial] {line}", flush=True)
        with open(output_dir / "trials.jsonl", "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
