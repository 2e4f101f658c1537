"""Held-out accuracy of each model family on the real GTZAN clips, through the whole pipeline.

    python -m evaluation.accuracy [--models cnn,lstm] [--seeds 42,43,44] [--epochs vgg=12]      (make accuracy)

Each family and seed runs ``local_runner.main`` in a child process (lists-trainval split; one pipeline root per
family, so its seeds share ExampleGen and Transform outputs; logs in ``<output-root>/bench-logs``) with the gate's
bars at zero, so every run is evaluated and pushed: the point is the measurement. Figures come from the run's own
records: ClipEvaluator's report, AudioExampleGen's summary.json, the pushed model re-run on the test split for
per-genre accuracy, the Trainer's MLflow run, and MLMD's wall times.

Each finished run is kept as strict JSON in ``<output-root>/bench-logs``, copied to ``evaluation/results/``
with the report so another machine can extend it (``--reuse-committed``); ``--reuse`` stays in its root.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import ast  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from bench.real_data import add_real_data_arguments, parse_models  # noqa: E402
from bench.report import publish  # noqa: E402
from config.settings import GATE_SPLIT, MODEL_TYPES, PROJECT_ROOT, SPLITS, PipelineConfig  # noqa: E402
from models import metrics  # noqa: E402

PROTOCOL = ("lists-trainval: artist-disjoint fault-filtered train/valid lists where a genre has both, hash split "
            "by track otherwise; the train+valid-list clips of Kereliuk et al. 2015 on this machine")
# The bars (mean test clip accuracy over the seeds) the report holds families to; the others have none.
TARGETS = {"musicnn": 0.85, "cnn": 0.70}
# No genre with at least FLOOR_CLIPS test clips below FLOOR (mean clip accuracy over the seeds).
FLOOR, FLOOR_CLIPS = 0.60, 10
GATE_OFF = ["--min-accuracy", "0", "--min-clip-accuracy", "0", "--max-accuracy-drop", "1"]
# The committed copies of the runs BENCHMARKS.md reports (see the module docstring).
RESULTS_DIR = PROJECT_ROOT / "evaluation" / "results"
CHILD = ("import json, sys, local_runner; summary = local_runner.main(sys.argv[2:]); "
         "open(sys.argv[1], 'w').write(json.dumps(summary, indent=2, sort_keys=True))")
BEAM_MODES = ("multi_threading", "multi_processing", "in_memory")


def parse_epochs(values: list[str]) -> dict[str, int]:
    """``["vgg=12", "cnn=30"]`` -> {"vgg": 12, "cnn": 30}."""
    epochs: dict[str, int] = {}
    for value in values:
        model, sep, number = value.partition("=")
        if not sep or model not in MODEL_TYPES or not number.isdigit() or int(number) < 1:
            raise SystemExit(f"--epochs expects MODEL=N with MODEL in {', '.join(MODEL_TYPES)}, got {value!r}.")
        epochs[model] = int(number)
    return epochs


def parse_seeds(text: str) -> list[int]:
    """``"42,43,44"`` -> [42, 43, 44]; at least one, no repeats."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise SystemExit(f"--seeds expects distinct integers separated by commas, like 42,43,44; got {text!r}.")
    return seeds


def parse_beam_modes(values: list[str], models: list[str]) -> dict[str, Optional[str]]:
    """``["multi_processing"]`` or ``["vgg=multi_processing"]`` -> model -> mode (None: the pipeline's default)."""
    modes: dict[str, Optional[str]] = {m: None for m in models}
    for value in values:
        model, sep, mode = value.rpartition("=")
        if mode not in BEAM_MODES or (sep and model not in MODEL_TYPES):
            raise SystemExit(f"--beam-mode expects [MODEL=]MODE with MODE in {', '.join(BEAM_MODES)}, got {value!r}.")
        for m in ([model] if sep else models):
            modes[m] = mode
    return modes


def beam_text(mode: Optional[str]) -> str:
    return (f"`--runner=DirectRunner --direct_running_mode={mode} --direct_num_workers=0`" if mode
            else f"`{' '.join(PipelineConfig().beam_args)}` (the pipeline's default)")


def runner_args(model: str, output_dir: Path, data_root: str, split_dir: str, epochs: Optional[int],
                beam_mode: Optional[str] = None, seed: Optional[int] = None,
                pipeline_args: Sequence[str] = ()) -> list[str]:
    args = ["--data-root", data_root, "--split", "lists-trainval", "--split-dir", split_dir, "--model", model,
            "--output-dir", str(output_dir), *GATE_OFF, *pipeline_args]
    if seed is not None:
        args += ["--seed", str(seed)]
    if epochs:
        args += ["--epochs", str(epochs)]
    if beam_mode:
        args += ["--beam-arg=--runner=DirectRunner", f"--beam-arg=--direct_running_mode={beam_mode}",
                 "--beam-arg=--direct_num_workers=0"]
    return args


# ----- reading the run back, and keeping it -------------------------------------------------------

def component_states(record) -> dict[str, dict]:
    """Component -> {"state": "ran" | "cached", "seconds"}; cached: those of the run that computed it."""
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.run_record import CACHED, outputs_of, producers_of

    complete = metadata_store_pb2.Execution.COMPLETE

    def seconds(execution) -> float:
        return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0

    states: dict[str, dict] = {}
    for name, execution in record.executions.items():
        if execution.last_known_state == complete:
            states[name] = {"state": "ran", "seconds": seconds(execution)}
        elif execution.last_known_state == CACHED:
            outputs = [a.id for a in outputs_of(record.store, [execution])]
            originals = [x for x in producers_of(record.store, outputs, exclude=execution.id)
                         if x.last_known_state == complete] if outputs else []
            # No outputs (AnomalyGate only checks): nothing was reused, so the cached step cost nothing.
            states[name] = {"state": "cached", "seconds": seconds(originals[0]) if originals else
                            (0.0 if not outputs else float("nan"))}
    return states


def split_counts(store, examples) -> dict[str, dict[str, dict[str, int]]]:
    """genre -> split -> {"tracks", "segments"} from the summary.json of the AudioExampleGen run that wrote EXAMPLES."""
    from pipeline.run_record import outputs_of, producers_of

    for artifact in outputs_of(store, producers_of(store, [examples.id])):
        path = Path(artifact.uri) / "summary.json"
        if path.exists():
            return json.loads(path.read_text())["genres"]
    raise FileNotFoundError(f"No summary.json among the outputs of the AudioExampleGen run that wrote {examples.uri}.")


def examples_artifact(examples_uri: str):
    """A finished run's ExampleGen output as the Examples artifact ClipEvaluator reads."""
    from tfx.types import artifact_utils, standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    return examples


def test_accumulator(examples_uri: str, model_uri: str):
    """ClipEvaluator's pass over the test split (metrics.ClipAccumulator: the scores and each clip's vote)."""
    from tfx.types import standard_artifacts

    from components.clip_evaluator import executor as clip

    model = standard_artifacts.Model()
    model.uri = model_uri
    [scored] = clip.score_split(examples_artifact(examples_uri), GATE_SPLIT, [model])
    return scored


def mlflow_run(tracking_uri: str, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, parameters) of the Trainer's MLflow run: the configuration the model was trained with."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    data = client.get_run(run_id).data
    metrics = dict(data.metrics)
    val_loss = sorted(client.get_metric_history(run_id, "val_loss"), key=lambda m: m.step)
    if val_loss:  # steps are epochs 0..n-1 across both VGG phases
        metrics["best_epoch"] = float(min(val_loss, key=lambda m: m.value).step + 1)
    return metrics, dict(data.params)


def trained_config(model: str, params: dict[str, str]) -> PipelineConfig:
    """The preset overridden by the run's logged ``section.key`` parameters: the settings it was trained with."""
    cfg = PipelineConfig().with_model(model)
    if "genres" in params:  # the label set, logged as a tuple's repr
        cfg.genres = tuple(ast.literal_eval(params["genres"]))
    for section in ("train", "features", "audio"):
        current = getattr(cfg, section)
        updates = {}
        for f in dataclasses.fields(current):
            text, value = params.get(f"{section}.{f.name}"), getattr(current, f.name)
            if text is None or isinstance(value, bool):
                continue
            if text == "None":
                updates[f.name] = None
            elif isinstance(value, (int, float, str)):
                updates[f.name] = type(value)(text)
            elif value is None:  # an Optional setting the preset leaves unset: a number if it reads as one
                try:
                    updates[f.name] = int(text) if text.lstrip("-").isdigit() else float(text)
                except ValueError:
                    updates[f.name] = text
        setattr(cfg, section, dataclasses.replace(current, **updates))
    return cfg


def collect(model: str, output_dir: Path, summary: dict, wall: float) -> dict:
    from pipeline.run_record import RunRecord, ingested_examples_of, open_store

    if not (gate := summary.get("gate")):
        raise SystemExit(f"{model}: the run produced no gate report; see its log.")
    record = RunRecord(open_store(str(output_dir / "metadata.sqlite")), summary["run_id"])
    model_artifact = record.output("Trainer", "Model")
    examples = ingested_examples_of(record.store, model_artifact)
    scores = test_accumulator(examples.uri, model_artifact.uri).score()
    if abs(scores.clip_accuracy - gate["candidate_clip_accuracy"]) > 1e-9:
        raise SystemExit(f"{model}: recomputed clip accuracy {scores.clip_accuracy} differs from the gate's "
                         f"{gate['candidate_clip_accuracy']}; the run's model is not the one the gate scored.")
    logged, params = mlflow_run(summary["mlflow_tracking_uri"], summary["mlflow_run_id"]) \
        if "mlflow_run_id" in summary else ({}, {})
    return {"model": model, "gate": gate, "scores": scores, "counts": split_counts(record.store, examples),
            "states": component_states(record), "wall": wall, "mlflow": logged, "params": params,
            "output_dir": str(output_dir), "model_uri": model_artifact.uri, "examples_uri": examples.uri}


def result_name(model: str, seed: int) -> str:
    return f"accuracy-{model}-seed{seed}-result.json"


def save_result(result: dict, path: Path) -> None:
    """Write one run's figures (``collect``'s dict plus seed and times) as strict JSON, as the clip gate's report."""
    from components.clip_evaluator.executor import strict_json

    scores = {**dataclasses.asdict(result["scores"]), "clip_confusion": result["scores"].clip_confusion.tolist()}
    path.write_text(json.dumps(strict_json({**result, "scores": scores}), indent=1, sort_keys=True,
                               allow_nan=False) + "\n")


def load_result(path: Path) -> dict:
    """The dict ``save_result`` wrote, with its Scores rebuilt; an MLflow metric that was not finite is left out."""
    data = json.loads(path.read_text())
    scores = data["scores"]
    data["scores"] = metrics.Scores(**{**scores, "clip_confusion": np.asarray(scores["clip_confusion"], np.int64)})
    data["mlflow"] = {k: v for k, v in data.get("mlflow", {}).items() if v is not None}
    return data


def finished_result(model: str, seed: int, output_root: Path, committed: bool = False) -> Optional[Path]:
    """The result file of an earlier run of MODEL and SEED in this output root, else (COMMITTED) the committed copy."""
    for folder in (output_root / "bench-logs", *([RESULTS_DIR] if committed else [])):
        if (folder / result_name(model, seed)).exists():
            return folder / result_name(model, seed)
    return None


# ----- late fusion of two families' runs ----------------------------------------------------------

def parse_fusions(values: list[str]) -> list[tuple[str, ...]]:
    """``["musicnn+efficientat"]`` -> [("musicnn", "efficientat")]: families whose clip scores are averaged."""
    fusions = []
    for value in values:
        members = tuple(m.strip() for m in value.split("+"))
        if len(members) < 2 or len(set(members)) != len(members) or any(m not in MODEL_TYPES for m in members):
            raise SystemExit(f"--fuse expects two or more distinct families joined by +, like musicnn+efficientat; "
                             f"got {value!r}.")
        fusions.append(members)
    return fusions


def fused_run(runs: Sequence[dict], genres: Sequence[str]) -> dict:
    """One seed's late fusion: each family's model re-scores its test split; a clip's scores are the mean vote."""
    votes = []
    for r in runs:
        if "model_uri" not in r:
            raise SystemExit(f"The {r['model']} run of seed {r.get('seed')} predates recorded model and examples "
                             "locations; run it again (drop --reuse for it) to fuse it.")
        accumulator = test_accumulator(r["examples_uri"], r["model_uri"])
        if abs(accumulator.score().clip_accuracy - r["gate"]["candidate_clip_accuracy"]) > 1e-9:
            raise SystemExit(f"{r['model']} seed {r.get('seed')}: its model no longer scores what its gate did; "
                             f"{r['model_uri']} is not the run's model.")
        votes.append(accumulator.votes())
    (_, labels, fused), left_out = metrics.fuse_votes(votes)
    confusion = metrics.confusion(labels, np.argmax(fused, axis=1), len(genres))
    return {"seed": runs[0].get("seed"), "clip_accuracy": float(np.trace(confusion) / len(labels)),
            "clips": len(labels), "left_out": left_out, "clip_confusion": confusion,
            "members": [float(r["gate"]["candidate_clip_accuracy"]) for r in runs]}


def fusion_text(members: Sequence[str], runs: list[dict], genres: Sequence[str]) -> str:
    """The fused rows: per seed against each member alone, and per genre."""
    rows = [f"| {r['seed']} | **{r['clip_accuracy']:.3f}** ({r['clips']}) | "
            + " | ".join(f"{a:.3f}" for a in r["members"]) + " |" for r in runs]
    left = sum(r["left_out"] for r in runs)
    left_text = f" Clips scored by one family only, left out: {left}." if left else ""
    return f"""
### Late fusion: {' + '.join(members)}

The mean of the families' test clip probabilities (each family's run of the same seed above, re-scored by its
pushed model's `from_examples` signature as ClipEvaluator does; nothing trained or tuned for the fusion).
Test clip accuracy **{spread([r['clip_accuracy'] for r in runs])}** over seeds {', '.join(str(r['seed']) for r in runs)}.

| seed | fused test clip accuracy (clips) | {' | '.join(f'{m} alone' for m in members)} |
|---|---|{'---|' * len(members)}
{chr(10).join(rows)}

Per genre (test clip accuracy, mean of the seeds): {recall_text(runs, genres)}.{left_text}
"""


def recall_text(runs: Sequence[dict], genres: Sequence[str]) -> str:
    """``blues 0.67, jazz 1.00``: each genre's test clip accuracy, mean over RUNS, where every run has its clips."""
    recalls = np.array([metrics.top1_rates(np.asarray(r["clip_confusion"]))[0] for r in runs])
    return ", ".join(f"{g} {np.mean(col):.2f}" for g, col in zip(genres, recalls.T) if np.isfinite(col).all())


def zero_shot_run(examples_uri: str, genres: Sequence[str]) -> dict:
    """mn04's AudioSet genre classes, untrained, on the test segments; a clip's answer is its segments' mean score."""
    import tensorflow as tf

    from components.clip_evaluator.executor import read_batches
    from tagging.zero_shot import ZeroShotModel, family_config, model_ref

    config = dataclasses.replace(family_config(), genres=tuple(genres))
    model = ZeroShotModel(model_ref().path, config)
    accumulator = metrics.ClipAccumulator()
    for serialized, labels, track_ids in read_batches(examples_artifact(examples_uri), GATE_SPLIT):
        pcm = tf.io.parse_example(serialized, {"audio": tf.io.FixedLenFeature([1], tf.string)})["audio"]
        features = model.tft_layer({"audio": pcm})[config.features.kind]
        accumulator.add(track_ids, model.segment_scores(features).numpy(), labels)
    return dataclasses.asdict(accumulator.score())


def zero_shot_text(run: dict, source: str, genres: Sequence[str]) -> str:
    """The zero-shot row: no seeds (nothing is trained), per genre beside it."""
    return f"""
### No training: AudioSet's genre classes (zero-shot)

mn04's AudioSet logits of the ten genres' classes, softmaxed, as `python -m tagging DIR --zero-shot` answers for a
library nobody has labelled; a clip's answer is the mean of its 3-s segments' scores. Scored on the test split's
segments of `{source}` (the clips every family above is tested on): test clip accuracy
**{run['clip_accuracy']:.3f}** ({run['clips']} clips), segment accuracy {run['segment_accuracy']:.3f}
({run['segments']} segments). Per genre (test clip accuracy): {recall_text([run], genres)}.
"""


# ----- the report ---------------------------------------------------------------------------

def per_genre_text(result: dict) -> str:
    """``blues 1/1, classical 9/10, ...`` (correct / test clips, genres with test clips only)."""
    confusion = result["scores"].clip_confusion
    return ", ".join(f"{genre} {int(confusion[i, i])}/{int(confusion[i].sum())}" for i, genre in
                     enumerate(trained_config(result["model"], result.get("params", {})).genres) if confusion[i].sum())


def counts_table(counts: dict, genres: tuple[str, ...]) -> str:
    rows = [f"| {genre} | " + " | ".join(f"{c.get('tracks', 0)} / {c.get('segments', 0)}"
                                         for c in (counts.get(genre, {}).get(s, {}) for s in SPLITS)) + " |"
            for genre in genres]
    totals = " | ".join(f"{sum(counts[g][s]['tracks'] for g in counts)} / "
                        f"{sum(counts[g][s]['segments'] for g in counts)}" for s in SPLITS)
    return ("| genre | " + " | ".join(f"{s} clips / segments" for s in SPLITS) + " |\n|---|---|---|---|\n"
            + "\n".join(rows) + f"\n| total | {totals} |")


def spread(values: list[float]) -> str:
    """``0.712 (0.690-0.733)``: mean and range over seeds (the mean alone for one seed)."""
    mean = float(np.mean(values))
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"


def by_family(results: list[dict]) -> dict[str, list[dict]]:
    """The runs grouped by model family, in the order they ran."""
    return {model: [r for r in results if r["model"] == model] for model in dict.fromkeys(r["model"] for r in results)}


def genre_clip_accuracy(runs: list[dict], genre_index: int) -> list[float]:
    """Per seed, clip accuracy on one genre's test clips (its top-1 recall); seeds without such clips left out."""
    recalls = (metrics.top1_rates(r["scores"].clip_confusion)[0][genre_index] for r in runs)
    return [float(value) for value in recalls if np.isfinite(value)]


def confusion_table(runs: list[dict], genres: tuple[str, ...]) -> str:
    """The clip confusion matrix summed over the seeds: rows true genre, columns predicted."""
    total = sum(r["scores"].clip_confusion for r in runs)
    head = "| true \\ predicted | " + " | ".join(g[:5] for g in genres) + " |\n|" + "---|" * (len(genres) + 1) + "\n"
    rows = [f"| {g} | " + " | ".join(str(int(v)) if v else "." for v in total[i]) + " |"
            for i, g in enumerate(genres) if total[i].sum()]
    return head + "\n".join(rows)


def below_floor(runs: list[dict], genres: tuple[str, ...], counts: dict) -> list[str]:
    """Genres with at least FLOOR_CLIPS test clips whose mean clip accuracy over the seeds is below FLOOR."""
    means = {g: np.mean(genre_clip_accuracy(runs, i)) for i, g in enumerate(genres)
             if counts[g]["test"]["tracks"] >= FLOOR_CLIPS}
    return [f"{g} {mean:.2f}" for g, mean in means.items() if mean < FLOOR]


def config_note(r: dict) -> str:
    """One family's training settings, as its run logged them."""
    from models import registry

    cfg = trained_config(r["model"], r.get("params", {}))
    t = cfg.train
    monitor = {"val_loss": "loss", "val_accuracy": "accuracy"}.get(t.early_stopping_monitor, t.early_stopping_monitor)
    heads = int(r.get("params", {}).get("train.heads", 1))  # absent: the run predates --heads and trained one
    phases = ", ".join(filter(None, [
        f"head trained on the frozen body's embeddings for up to {min(t.frozen_epochs, t.epochs)} "
        f"epochs at lr {t.learning_rate:g}, then the whole network fine-tuned at lr {t.finetune_learning_rate:g} "
        f"for the rest of the {t.epochs}-epoch budget (the head's unused epochs included, so at least "
        f"{max(t.epochs - t.frozen_epochs, 0)})" if r["model"] == "vgg" else f"lr {t.learning_rate:g}",
        f"learning rate x{t.reduce_lr_factor:g} after {t.reduce_lr_patience} epochs without a better eval {monitor}"
        if t.lr_schedule == "plateau" else
        "cosine learning-rate decay to 0 over the epochs" if t.lr_schedule == "cosine" else "",
        f"label smoothing {t.label_smoothing:g}" if t.label_smoothing else "",
        f"{heads} heads on the frozen body's embeddings, each from its own seed, averaged" if heads > 1 else ""]))
    balance = (f"class-balanced loss (weight per genre = its train segments ^ -{t.class_balance:g})"
               if t.class_balance > 0 else "no class balancing")
    stopping = ("no early stopping (the last epoch's weights)" if t.early_stopping_patience is None else
                f"early stopping on the eval split's {monitor} (patience {t.early_stopping_patience}, "
                "best weights restored)")
    augmentation = ", ".join(filter(None, [
        f"gain +-{t.random_gain_db:g} dB" if t.random_gain_db > 0 else "",
        f"band shift up to {t.band_shift} bins" if t.band_shift > 0 else "",
        f"SpecAugment (one frequency mask up to {t.freq_mask_param} bins, one time mask up to "
        f"{t.time_mask_param} frames)" if t.spec_augment else "",
        f"mixup alpha {t.mixup_alpha:g}" if t.mixup_alpha > 0 else ""])) or "none"
    if registry.has_pretrained_backbone(cfg) and t.epochs <= t.frozen_epochs:  # only heads train (training.fit)
        augmentation = "none (the heads train on the frozen body's embeddings of the segments as they are)"
    ran, cached = (", ".join(k for k, v in r["states"].items() if v["state"] == s) or "-" for s in ("ran", "cached"))
    rates = {cfg.features.kind: cfg.features.sample_rate or cfg.audio.sample_rate}
    inputs = " + ".join(f"{kind} ({rates.get(kind, cfg.audio.sample_rate)} Hz)"
                        for kind in (cfg.features.kind, *cfg.features.extra_kinds))
    if cfg.features.band_limit_hz:
        inputs += f" of the segment band-limited to {cfg.features.band_limit_hz} Hz"
    return (f"- {r['model']}: {inputs}, batch {t.batch_size}, {phases}, "
            f"{balance}, {stopping}, max epochs {t.epochs}; augmentation: {augmentation}. "
            f"Beam args: {r.get('beam', beam_text(None))}. Components run (seed {r.get('seed', t.seed)}): "
            f"{ran}; from cache: {cached}. Pipeline root `{r['output_dir']}`.")


def epochs_text(m: dict) -> str:
    epochs = int(m["epochs_trained"]) if "epochs_trained" in m else "?"
    notes = "; ".join(filter(None, [
        f"head {int(m['head_epochs'])} + fine-tuning {epochs - int(m['head_epochs'])}"
        if "head_epochs" in m and epochs != "?" else "",
        f"best val_loss: epoch {int(m['best_epoch'])}" if "best_epoch" in m else ""]))
    return f"{epochs} ({notes})" if notes else str(epochs)


def report(results: list[dict], command: str) -> str:
    first = trained_config(results[0]["model"], results[0].get("params", {}))
    genres = first.genres  # the label set
    genres_in_test = [g for g in genres if any(r["counts"][g]["test"]["tracks"] for r in results)]
    counts = results[0]["counts"]
    clips_total = sum(counts[g][s]["tracks"] for g in counts for s in SPLITS)
    genres_text = ", ".join(f"{g} ({counts[g]['test']['tracks']})" for g in genres_in_test)
    missing = [g for g in genres if g not in genres_in_test]
    small = [g for g in genres if sum(counts[g][s]["tracks"] for s in SPLITS) <= 10]
    caveat = (f"No test clip for {', '.join(missing)}. " if missing else f"All {len(genres)} genres have test clips. ") + (
        f"{len(small)} genres ({', '.join(small)}) have at most 10 clips in all splits together (table below), "
        "so their per-genre figures rest on one to a few clips." if small else "")
    families = by_family(results)
    audio = first.audio
    overlap = ("no overlap" if audio.hop_seconds >= audio.segment_seconds
               else f"one every {audio.hop_seconds:g} s (overlapping)")

    summary_rows, seed_rows, notes = [], [], []
    for model, runs in families.items():
        clip = [r["gate"]["candidate_clip_accuracy"] for r in runs]
        segment = [r["gate"]["candidate_segment_accuracy"] for r in runs]
        eval_clip = [r["mlflow"]["eval_clip_accuracy"] for r in runs if "eval_clip_accuracy" in r["mlflow"]]
        target = TARGETS.get(model)
        verdict = "-" if target is None else f"{target:.2f}: {'met' if np.mean(clip) >= target else 'NOT met'}"
        trainer = [r["states"]["Trainer"]["seconds"] for r in runs if "Trainer" in r["states"]]
        summary_rows.append(
            f"| {model} | {', '.join(str(r.get('seed', '?')) for r in runs)} | **{spread(clip)}** | {spread(segment)} | "
            f"{spread(eval_clip) if eval_clip else '?'} | {verdict} | "
            f"{', '.join(below_floor(runs, genres, counts)) or 'none'} | "
            f"{f'{np.mean(trainer):.0f}' if trainer else '?'} |")
        for r in runs:
            g, m = r["gate"], r["mlflow"]
            eval_text = (f"{m['eval_segment_accuracy']:.3f} / {m['eval_clip_accuracy']:.3f} ({int(m['eval_clips'])} clips)"
                         if "eval_clip_accuracy" in m else "?")
            trainer_s = f"{r['states']['Trainer']['seconds']:.0f}" if "Trainer" in r["states"] else "?"
            total = sum(v["seconds"] for v in r["states"].values())
            seed_rows.append(
                f"| {model} | {r.get('seed', '?')} | {g['candidate_segment_accuracy']:.3f} ({g['candidate_segments']:.0f}) | "
                f"{g['candidate_clip_accuracy']:.3f} ({g['candidate_clips']:.0f}) | {per_genre_text(r)} | {eval_text} | "
                f"{epochs_text(m)} | {trainer_s} | {total:.0f} | {r['wall']:.0f} | {r.get('finished', '?')} |")
        notes.append(config_note(runs[0]))

    genre_rows = [f"| {g} | {counts[g]['test']['tracks']} | " + " | ".join(
        spread(v) if (v := genre_clip_accuracy(runs, i)) else "-" for runs in families.values()) + " |"
        for i, g in enumerate(genres) if g in genres_in_test]
    confusions = "\n\n".join(f"**{model}** (test clips of {len(runs)} seed{'s, summed' if len(runs) > 1 else ''}):\n\n"
                             f"{confusion_table(runs, genres)}" for model, runs in families.items())
    return f"""
Protocol: **{PROTOCOL}**, {clips_total} clips. Data: the real clips in `../shared/data/gtzan/audio` (30 s,
{audio.segment_seconds:g} s segments, {overlap}). The fault-filtered test list's clips are not on this machine, so
the `test` split here is the held-out half of the valid list (artist-disjoint from train) for genres with clips in both lists, and a hash
slice of tracks for genres with clips in one list only (there the same artist may be in train and test).
No clip of `test` was used for training, early stopping or choosing settings.

Genres in the `test` split (clips): {genres_text}. {caveat}

Gate bars set to zero for these runs (`{' '.join(GATE_OFF)}`) so that every run reaches Evaluator and
ClipEvaluator; the figures are the measurement, not a blessing. Each family ran once per seed (`--seed`) in one
pipeline root, so its seeds share one ExampleGen and Transform output and differ in initial weights, shuffling
and augmentation only.

| model | seeds | test clip accuracy, mean (min-max) | test segment accuracy, mean (min-max) | eval clip accuracy, mean (min-max) | target (mean clip) | genres with >= {FLOOR_CLIPS} test clips below {FLOOR:.2f} (mean) | Trainer s (mean) |
|---|---|---|---|---|---|---|---|
{chr(10).join(summary_rows)}

Per seed (test: accuracy (segments or clips); the eval split, also held out from training, is the one settings
were chosen on):

| model | seed | test segment accuracy | test clip accuracy (soft vote) | test clips correct per genre | eval split: segment / clip accuracy | epochs trained | Trainer s | all components s | this run's wall s | finished |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(seed_rows)}

Test clip accuracy per genre, mean over the seeds (min-max):

| genre | test clips | {' | '.join(families)} |
|---|---|{'---|' * len(families)}
{chr(10).join(genre_rows)}

Clip confusion matrices:

{confusions}

Times: "Trainer s" and "all components s" are the wall times of the executions that computed the outputs
(from MLMD; for a component taken from the cache, those of the run that computed it); "this run's wall s" is
the `local_runner.main` call of this benchmark, cached components included.

{chr(10).join(notes)}

Clips / segments per split and genre (lists-trainval on these {clips_total} clips; identical for every family):

{counts_table(counts, genres)}

### The final model: train on all of train + valid, score on the fault-filtered test list

Not possible on this machine: the test list's 290 clips are absent. With a GTZAN copy that holds them
(the full 1000 clips; the lists skip the faulty ones), protocol `fault-filtered-final` trains on the train and
valid lists together (a {PipelineConfig().split.ratios[1]:.0%} hash slice of those tracks is kept aside as `eval` for
early stopping) and scores the test list as `test`:

```bash
make run ARGS="--data-root /path/to/gtzan/genres_original --split fault-filtered-final \\
  --split-dir ../shared/data/gtzan/splits --model musicnn"
```

(`--model cnn` / `lstm` likewise; leave the gate bars at their defaults for a release.) The summary's gate
entry then holds segment and clip accuracy on the 290 held-out test-list clips, all ten genres.

Command for the figures above: `{command}`.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluation.accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated (default: every family in models/registry.BUILDERS)")
    parser.add_argument("--seeds", default="42,43,44", help="comma-separated; each family runs once per seed "
                        "(default: %(default)s)")
    parser.add_argument("--epochs", action="append", default=[], metavar="MODEL=N",
                        help="maximum epochs for one family, repeatable (default: the preset's)")
    parser.add_argument("--beam-mode", action="append", default=[], metavar="[MODEL=]MODE",
                        help=f"DirectRunner running mode ({', '.join(BEAM_MODES)}) for every family, or MODEL=MODE "
                             "for one; repeatable (default: the pipeline's Beam args, "
                             f"{' '.join(PipelineConfig().beam_args)})")
    parser.add_argument("--pipeline-arg", action="append", default=[], metavar="ARG",
                        help="one more local_runner argument for every run, repeatable, e.g. "
                             "--pipeline-arg=--hop-seconds=1.5 (give each such variant its own --output-root)")
    parser.add_argument("--reuse", action="store_true", help="take a family and seed whose run an earlier "
                        "invocation finished (its result file in <output-root>/bench-logs) instead of running it "
                        "again: a killed benchmark resumes, and families run at different times share one report")
    parser.add_argument("--reuse-committed", action="store_true", help="--reuse, and where the output root has no "
                        "finished run, take the one committed in evaluation/results/ (the runs BENCHMARKS.md "
                        "reports): add a family or seed to the report on a new machine")
    parser.add_argument("--finished-only", action="store_true", help="with --reuse: run nothing, report the "
                        "finished runs and name the families and seeds that have none")
    parser.add_argument("--fuse", action="append", default=[], metavar="A+B",
                        help="also report the late fusion of these families' runs (their clip scores averaged, "
                             "seed by seed); the families must be among --models; repeatable")
    parser.add_argument("--zero-shot", metavar="MODEL", help="also score mn04's AudioSet genre classes (no training) "
                        "on the test segments of this family's first run; a family ingesting at 32 kHz (efficientat, "
                        "musicnn_efficientat), among --models")
    add_real_data_arguments(parser, "one pipeline root per family under real-<model>/")
    args = parser.parse_args(argv)
    fusions = parse_fusions(args.fuse)
    args.reuse = args.reuse or args.reuse_committed
    if args.finished_only and not args.reuse:
        parser.error("--finished-only reports earlier runs: give --reuse too")
    if args.models is None:
        from models.registry import BUILDERS  # TensorFlow loads only when the families are not named
        args.models = ",".join(BUILDERS)
    models = parse_models(args.models)
    for members in fusions:
        if not set(members) <= set(models):
            raise SystemExit(f"--fuse {'+'.join(members)}: fuse families among --models ({', '.join(models)}).")
    seeds = parse_seeds(args.seeds)
    epochs = parse_epochs(args.epochs)
    beam_modes = parse_beam_modes(args.beam_mode, models)
    output_root = Path(args.output_root).resolve()
    logs = output_root / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)

    results, result_files, not_run = [], [], []
    for model in models:
        output_dir = output_root / f"real-{model}"
        for seed in seeds:
            result_path = finished_result(model, seed, output_root, args.reuse_committed) if args.reuse else None
            if result_path:
                result = load_result(result_path)
                print(f"[bench] {model} seed {seed}: the finished run of {result.get('finished', '?')} reused "
                      f"({result_path})", flush=True)
            elif args.finished_only:
                not_run.append(f"{model} seed {seed}")
                continue
            else:
                argv_model = runner_args(model, output_dir, args.data_root, args.split_dir, epochs.get(model),
                                         beam_modes[model], seed=seed, pipeline_args=args.pipeline_arg)
                log_path, summary_path = (logs / f"accuracy-{model}-seed{seed}{suffix}"
                                          for suffix in (".log", "-summary.json"))
                result_path = logs / result_name(model, seed)
                print(f"[bench] {model} seed {seed}: local_runner.main({argv_model}) (log: {log_path})", flush=True)
                started = time.time()
                with open(log_path, "w") as log:
                    subprocess.run([sys.executable, "-c", CHILD, str(summary_path), *argv_model], check=True,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                   env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
                wall = time.time() - started
                result = collect(model, output_dir, json.loads(summary_path.read_text()), wall)
                result.update(seed=seed, beam=beam_text(beam_modes[model]),
                              max_epochs=epochs.get(model, PipelineConfig().with_model(model).train.epochs),
                              finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
                save_result(result, result_path)
                g = result["gate"]
                print(f"[bench] {model} seed {seed}: test segment accuracy {g['candidate_segment_accuracy']:.3f} "
                      f"({g['candidate_segments']:.0f} segments), clip accuracy {g['candidate_clip_accuracy']:.3f} "
                      f"({g['candidate_clips']:.0f} clips; {per_genre_text(result)}); eval clip accuracy "
                      f"{result['mlflow'].get('eval_clip_accuracy', float('nan')):.3f}; "
                      f"{result['mlflow'].get('epochs_trained', float('nan')):.0f} epochs; {wall:.0f} s", flush=True)
            results.append(result)
            result_files.append(result_path)

    if not results:
        searched = f"{logs}" + (f" or {RESULTS_DIR}" if args.reuse_committed else "")
        raise SystemExit(f"No finished run to report for {', '.join(not_run)}: none in {searched}. "
                         "Run them: drop --finished-only.")
    command = "make accuracy" + (f' ARGS="{" ".join(argv)}"' if argv else "")
    body = report(results, command)
    families = by_family(results)
    genres = trained_config(results[0]["model"], results[0].get("params", {})).genres
    for members in fusions:
        of_seed = [{r.get("seed"): r for r in reversed(families.get(m, []))} for m in members]
        runs = [fused_run([x[seed] for x in of_seed], genres) for seed in seeds if all(seed in x for x in of_seed)]
        if runs:
            body += fusion_text(members, runs, genres)
    if args.zero_shot:
        runs = families.get(args.zero_shot, [])
        from tagging.zero_shot import family_config

        if not runs or PipelineConfig().with_model(args.zero_shot).audio != family_config().audio:
            raise SystemExit(f"--zero-shot {args.zero_shot}: name a family among --models with a finished run that "
                             "ingests as the zero-shot model reads audio (mn04's 32 kHz, 3-s segments: efficientat, "
                             "musicnn_efficientat).")
        body += zero_shot_text(zero_shot_run(runs[0]["examples_uri"], genres), runs[0]["examples_uri"], genres)
    if not_run:
        body += (f"\n\nNot run (asked for, no finished run to report): {', '.join(not_run)}. The means above are over "
                 "the seeds each family has.\n")
    publish(body, not args.no_write, "accuracy", "Held-out accuracy on real GTZAN clips (lists-trainval)", command)
    if not args.no_write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for path in result_files:
            if path.parent.resolve() != RESULTS_DIR.resolve():
                shutil.copyfile(path, RESULTS_DIR / path.name)
        print(f"[bench] the {len(result_files)} runs reported are in {RESULTS_DIR}: commit them with BENCHMARKS.md",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
