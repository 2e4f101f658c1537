"""Model selection in the pipeline, end to end through `local_runner.main`: `--tune` runs TFX's Tuner.

Real components (LocalDagRunner, SQLite MLMD, Beam's DirectRunner, KerasTuner); nothing is mocked. The ANN on the
smallest synthetic set (2 train, 1 eval and 1 test track a genre, 2 segments a track), three trials of three folds:

- the Tuner writes the best-hyperparameters artifact and a score for every trial, and prints a [tune] line each;
- the Trainer compiles its model with the tuned values: the label smoothing asked for on the command line (0.05)
  is in no trial's choices, so the value read back from the compiled model can only have come from the Tuner;
- the run summary and MLflow name the chosen values and every trial's score;
- the same command again takes the Tuner and the Trainer from the cache.
"""
from __future__ import annotations

import json
import os
import re

import pytest
from mlflow.tracking import MlflowClient

import local_runner
from pipeline.run_record import open_store
from tests.families import train_lines

BEAM = ["--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory"]
ASKED_SMOOTHING = 0.05  # not among the search's label smoothings (models/tuning.LABEL_SMOOTHING)
TRIALS = 3
ARGS = ["--model", "ann", "--until", "train", "--epochs", "8", "--synthetic-tracks", "4", "--synthetic-seconds", "6",
        "--label-smoothing", str(ASKED_SMOOTHING), "--tune", "--tune-trials", str(TRIALS), *BEAM]
COMPILED = re.compile(r"^\[train\] compiled: learning rate (\S+), label smoothing (\S+)$")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Two identical tuning runs in one output dir: (output dir, first summary, its log lines, second summary)."""
    output_dir = str(tmp_path_factory.mktemp("tune"))
    first = local_runner.main(["--output-dir", output_dir, *ARGS])
    with open(first["log"], errors="replace") as f:
        lines = [line.rstrip() for line in f]
    compiled = [line for line in train_lines(output_dir) if COMPILED.match(line)]
    again = local_runner.main(["--output-dir", output_dir, *ARGS])
    return output_dir, first, lines, compiled, again


def _newest_file(store, type_name: str) -> str:
    artifact = max(store.get_artifacts_by_type(type_name), key=lambda a: a.id)
    [name] = os.listdir(artifact.uri)
    with open(os.path.join(artifact.uri, name)) as f:
        return f.read()


def test_the_tuner_writes_the_best_hyperparameters_and_every_trials_score(tuned):
    output_dir, _, lines, _, _ = tuned
    store = open_store(os.path.join(output_dir, "metadata.sqlite"))
    best = json.loads(_newest_file(store, "HyperParameters"))["values"]
    assert set(best) == {"learning_rate", "label_smoothing", "class_balance"}
    trials = json.loads(_newest_file(store, "TunerResults"))
    assert len(trials) == TRIALS
    assert all(0.0 <= trial["score"] <= 1.0 for trial in trials)
    assert max(trial["score"] for trial in trials) == trials[0]["score"]  # best first
    assert {k: trials[0][k] for k in best} == best
    progress = [line for line in lines if line.startswith("[tune] trial ") and "fold clip accuracy" in line]
    assert [line.split(":")[0] for line in progress] == [f"[tune] trial {k}/{TRIALS}" for k in range(1, TRIALS + 1)]


def test_the_trainer_compiles_the_tuned_values(tuned):
    output_dir, _, _, compiled, _ = tuned
    store = open_store(os.path.join(output_dir, "metadata.sqlite"))
    best = json.loads(_newest_file(store, "HyperParameters"))["values"]
    [line] = compiled
    rate, smoothing = (float(v) for v in COMPILED.match(line).groups())
    assert smoothing != ASKED_SMOOTHING
    assert smoothing == pytest.approx(best["label_smoothing"])
    assert rate == pytest.approx(best["learning_rate"])


def test_the_summary_and_mlflow_name_the_choice_and_every_trials_score(tuned):
    output_dir, first, _, _, again = tuned
    store = open_store(os.path.join(output_dir, "metadata.sqlite"))
    best = json.loads(_newest_file(store, "HyperParameters"))["values"]
    trials = json.loads(_newest_file(store, "TunerResults"))
    for summary in (first, again):  # a cached Tuner reports the search that made its choice
        assert summary["tuning"]["chosen"] == best
        assert [(t["trial"], t["score"]) for t in summary["tuning"]["trials"]] == \
            [(int(t["trial_id"]) + 1, t["score"]) for t in trials]
    client = MlflowClient(first["mlflow_tracking_uri"])
    experiment = client.get_experiment_by_name("genre-pipeline")
    [tune_run] = client.search_runs([experiment.experiment_id], "tags.`genre.stage` = 'tune'")
    assert tune_run.info.run_name.startswith("tune-ann-")
    assert {k.removeprefix("tuned."): float(v) for k, v in tune_run.data.params.items() if k.startswith("tuned.")} \
        == pytest.approx(best)
    steps = client.get_metric_history(tune_run.info.run_id, "fold_clip_accuracy")
    assert sorted(m.value for m in steps) == sorted(t["score"] for t in trials)
    trained = client.get_run(first["mlflow_run_id"])
    assert trained.data.tags["tuned"] == tune_run.data.tags["tuned"]
    assert float(trained.data.params["train.label_smoothing"]) == pytest.approx(best["label_smoothing"])


def test_the_same_command_again_takes_the_tuner_and_the_trainer_from_the_cache(tuned):
    _, first, _, _, again = tuned
    assert "Tuner" not in first["reused_from_cache"]
    assert {"Transform", "Tuner", "Trainer"} <= set(again["reused_from_cache"])
