"""A user's second command, end to end through `local_runner.main` (the README's run command).

Real components: LocalDagRunner, SQLite MLMD, Beam's DirectRunner, MLflow's SQLite store,
real subprocesses and signals. Nothing is mocked.

- Switching models in one output dir: CNN, then VGG (16 kHz), then CNN again. The
  latest-blessed baseline of runs 2 and 3 takes another input format; each run says so in
  one line and is gated on the absolute bars (before, TFMA crashed feeding 22.05 kHz
  examples to the 16 kHz VGG). A fourth run changes only a gate bar: the gate re-runs, the
  Trainer comes from cache. A fifth run, a VGG on a smaller synthetic set, is not compared
  with the last blessed model (the VGG of run 2: LatestBlessedModelStrategy takes the newest
  model, and run 3 blessed an older one) because that model trained on some of its test
  tracks; it says so in one line.
- The console of those runs holds only the project's lines; the library noise is in the
  log file.
- A data root with two genres is refused before any compute; with --genres-from-data and
  two tracks a genre it is ingested and stopped before training: its test split is empty.
- A run killed (SIGKILL) in the Trainer: a second run on the same output dir while it
  lives is refused naming its PID; the next run marks its MLflow run KILLED and its MLMD
  executions FAILED.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import local_runner
from config.settings import PROJECT_ROOT
from pipeline.run_record import RUNNING, open_store

BEAM = ["--beam-arg=--runner=DirectRunner", "--beam-arg=--direct_running_mode=in_memory"]
# Small enough for CI; the stratified split gives each genre 2 train, 1 eval and 1 test track
# (the gate refuses a test split that lacks a genre of the label set).
DATA = ["--synthetic-tracks", "4", "--synthetic-seconds", "6"]
# The absolute bars are lowered: this test is about which baseline the gate uses, not accuracy.
BARS = ["--min-accuracy", "0.1", "--min-clip-accuracy", "0.1", "--min-test-clips", "10"]
# The VGG's first 10 epochs train its head on embeddings computed once: seconds each.
EPOCHS = {"cnn": "6", "vgg": "10"}
NOISE = ("undefined symbol", "cuInit", "ZetaSQL", "zetasql", "property_predicate", "Discarding unparseable args")


def run(output_dir: str, model: str, *extra: str) -> dict:
    return local_runner.main(["--output-dir", output_dir, "--model", model, "--epochs", EPOCHS[model],
                              *DATA, *BARS, *BEAM, *extra])


@pytest.fixture(scope="module")
def model_switch(tmp_path_factory):
    """Five runs in one output dir; each run's summary and console."""
    output_dir = str(tmp_path_factory.mktemp("switch"))
    runs = {}
    for name, model, extra in (("cnn", "cnn", ()), ("vgg", "vgg", ()), ("cnn_again", "cnn", ()),
                               ("new_bar", "cnn", ("--min-accuracy", "0.15")),
                               ("fewer_tracks", "vgg", ("--synthetic-tracks", "3"))):
        runs[name] = run(output_dir, model, *extra)
    return output_dir, runs


def _console(summary: dict) -> str:
    """What the run showed on its terminal: the log file holds it with everything else, so
    the console is the log's lines that the console filter lets through."""
    from local_run.console import OWN_LINE
    lines = Path(summary["log"]).read_bytes().splitlines(keepends=True)
    return b"".join(line for line in lines if OWN_LINE.match(line)).decode()


def test_switching_models_gates_each_run_on_a_comparable_baseline(model_switch):
    _, runs = model_switch
    for name, summary in runs.items():
        assert summary["gate"]["blessed"] or name in ("new_bar", "fewer_tracks"), (name, summary["gate"]["reasons"])
    assert "[baseline] no blessed model yet" in _console(runs["cnn"])
    for name in ("vgg", "cnn_again"):
        line = next(line for line in _console(runs[name]).splitlines() if line.startswith("[baseline]"))
        assert "not comparable" in line and "absolute bars" in line, line
    assert "16000 Hz" in _console(runs["cnn_again"]) and "22050 Hz" in _console(runs["cnn_again"])
    assert runs["vgg"]["pushed_to"] != runs["cnn"]["pushed_to"]
    assert runs["cnn_again"].get("pushed_to"), "the CNN, blessed again against the VGG, is served again"


def test_a_baseline_that_trained_on_the_candidates_test_tracks_is_not_compared(model_switch):
    """3 tracks a genre split 1/1/1: some of those test tracks were train or eval tracks of the
    4-track VGG (the stratified split moves tracks when a genre's count changes)."""
    from components import model_tracks
    _, runs = model_switch
    line = next(line for line in _console(runs["fewer_tracks"]).splitlines() if line.startswith("[baseline]"))
    assert "trained on" in line and "of the candidate's 10 test tracks" in line and "absolute bars" in line, line
    assert "baseline_clip_accuracy" not in runs["fewer_tracks"]["gate"]
    decision = line.removeprefix("[baseline] ")
    assert runs["fewer_tracks"]["gate"]["baseline_decision"] == decision  # the report keeps it
    client = MlflowClient(runs["fewer_tracks"]["mlflow_tracking_uri"])
    assert client.get_run(runs["fewer_tracks"]["mlflow_run_id"]).data.tags["gate_baseline"] == decision
    # The line's count, checked against the tracks the Trainer recorded beside each model.
    recorded = [model_tracks.load(os.path.dirname(path)) for path in glob.glob(os.path.join(
        runs["cnn"]["pipeline_root"], "Trainer", "model", "*", model_tracks.TRACKS_FILE))]
    small = [tracks for tracks in recorded if len(tracks["train"]) == 10]  # 1 train track a genre
    four = [tracks for tracks in recorded if len(tracks["train"]) == 20]  # the CNN's and the VGG's 2 a genre
    assert len(small) == 1 and len(four) == 2 and four[0] == four[1], recorded
    seen = set(small[0]["test"]) & set(four[0]["train"] + four[0]["eval"])
    assert seen and f"trained on {len(seen)} of the candidate's 10 test tracks" in line, (sorted(seen), line)


def test_each_summary_describes_its_own_run(model_switch):
    _, runs = model_switch
    assert len({s["run_id"] for s in runs.values()}) == len(runs)
    assert runs["vgg"]["mlflow_run_id"] != runs["cnn"]["mlflow_run_id"]
    # Run 3 reuses run 1's Trainer from cache: the same model, so the same MLflow run.
    assert runs["cnn_again"]["mlflow_run_id"] == runs["cnn"]["mlflow_run_id"]
    assert "Trainer" not in runs["vgg"]["reused_from_cache"]
    assert {"Transform", "Trainer"} <= set(runs["cnn_again"]["reused_from_cache"])
    assert runs["vgg"]["data"]["report"] != runs["cnn"]["data"]["report"]  # 16 kHz ingestion is its own


def test_a_gate_bar_change_reruns_the_gate_not_the_trainer(model_switch):
    _, runs = model_switch
    reused = set(runs["new_bar"]["reused_from_cache"])
    assert {"AudioExampleGen", "Transform", "Trainer"} <= reused
    assert "Evaluator" not in reused and "ClipEvaluator" not in reused
    assert "[step] Trainer: reused from cache" in _console(runs["new_bar"])


def test_the_console_shows_no_library_noise(model_switch):
    _, runs = model_switch
    console = _console(runs["cnn"])
    for noise in NOISE:
        assert noise not in console, noise
    assert "[step] AudioExampleGen" in console and "[ingest]" in console
    assert "[step] Trainer" in console and "[train] epoch" in console


def test_a_fresh_process_console_is_quiet_and_its_log_keeps_the_noise(tmp_path):
    """The README's command in a new interpreter, as a user starts it: TensorFlow, tensorflow-io
    and TFX print their start-up noise there, onto the process's real file descriptors."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "local_runner.py"), "--output-dir", str(tmp_path), "--until", "validate",
         "--synthetic-tracks", "3", "--synthetic-seconds", "6", *BEAM],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TMPDIR": str(temp)},
        timeout=1200)
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    assert "[step] StatisticsGen" in console and "=== genre pipeline: summary ===" in console
    for noise in NOISE:
        assert noise not in console, noise
    assert not [line for line in console.splitlines() if line.startswith(("I0", "I1", "W0", "W1", "E0", "WARNING:",
                                                                          "INFO:"))]
    log = Path(next(line.split(": ", 1)[1] for line in console.splitlines() if line.startswith("[run] log file:")))
    assert any(noise in log.read_text(errors="replace") for noise in NOISE), "the log keeps what the console hides"
    # Beam steps ran (ExampleGen, StatisticsGen), and none left TFX's 52 MB sdist of itself behind.
    assert not list(temp.glob("*/build/tfx")), sorted(p.name for p in temp.iterdir())


def _two_genre_root(tmp_path: Path, tracks: int = 3) -> Path:
    from synthetic.generator import generate
    source = tmp_path / "ten"
    generate(source, tracks_per_genre=tracks, seconds=6.0, seed=0)
    root = tmp_path / "two"
    for genre in ("blues", "jazz"):
        shutil.copytree(source / genre, root / genre)
    return root


def test_a_two_genre_root_is_refused_before_any_compute(tmp_path, capsys):
    root = _two_genre_root(tmp_path)
    with pytest.raises(local_runner.RunFailed) as failed:
        local_runner.main(["--data-root", str(root), "--output-dir", str(tmp_path / "out"), *BEAM])
    assert failed.value.code == 1
    message = failed.value.paragraph
    assert "differ from GTZAN's ten genres" in message and "--genres-from-data" in message
    assert "blues, jazz" in message
    assert not (tmp_path / "out" / "metadata.sqlite").exists()  # nothing ran
    assert "Traceback" not in capsys.readouterr().err


def test_own_genres_with_too_few_tracks_stop_before_training(tmp_path):
    """Two tracks a genre cannot fill three splits: the run is refused before anything is decoded, naming the cause."""
    root = _two_genre_root(tmp_path, tracks=2)
    out = tmp_path / "out"
    with pytest.raises(local_runner.RunFailed) as failed:
        local_runner.main(["--data-root", str(root), "--output-dir", str(out), "--genres-from-data",
                           "--until", "train", *BEAM])
    message = failed.value.paragraph
    assert message.startswith("Run not started") and "train, eval and test" in message and "Fix: " in message
    assert not (out / "pipeline_root").exists()


def _mlflow_runs(uri: str) -> list:
    mlflow.set_tracking_uri(uri)
    experiment = MlflowClient().get_experiment_by_name("genre-pipeline")
    return MlflowClient().search_runs([experiment.experiment_id]) if experiment else []


def test_a_killed_run_is_closed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    args = ["--output-dir", str(out), "--until", "train", "--epochs", "200", "--synthetic-tracks", "3",
            "--synthetic-seconds", "6", *BEAM]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    log = open(tmp_path / "first.out", "w")
    first = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "local_runner.py"), *args],
                             stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 900
        while "[train] epoch" not in (tmp_path / "first.out").read_text():
            assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
            assert time.time() < deadline, "the first run never reached the Trainer"
            time.sleep(1)
        # While it trains, a second run on the same output dir is refused, naming the first.
        with pytest.raises(local_runner.RunFailed) as refused:
            local_runner.main(args)
        assert f"PID {first.pid}" in refused.value.paragraph and "--output-dir" in refused.value.paragraph
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        log.close()

    uri = f"sqlite:///{out / 'pipeline_root' / 'mlflow.db'}"
    [left] = [r for r in _mlflow_runs(uri) if r.info.status == "RUNNING"]
    store = open_store(str(out / "metadata.sqlite"))
    assert any(e.last_known_state == RUNNING for e in store.get_executions())

    summary = local_runner.main(args[:args.index("--epochs")] + ["--epochs", "2"] + args[args.index("--epochs") + 2:])
    console = Path(summary["log"]).read_text()
    assert f"MLflow run {left.info.run_id} was left RUNNING by a run that was killed: marked KILLED" in console
    statuses = {r.info.run_id: r.info.status for r in _mlflow_runs(uri)}
    assert statuses[left.info.run_id] == "KILLED"
    assert statuses[summary["mlflow_run_id"]] == "FINISHED"
    assert not any(e.last_known_state == RUNNING for e in open_store(str(out / "metadata.sqlite")).get_executions())
