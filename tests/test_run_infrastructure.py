"""The local runner's plumbing, without running a pipeline: pre-flight checks, the
output-dir lock, the console filter, failure paragraphs and MLflow run bookkeeping.

All real: files, flock between two processes, OS pipes and file descriptors, and an
MLflow SQLite store.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import local_runner
from config.errors import UserError, find_user_error
from config.settings import GENRES, PathsConfig, PipelineConfig
from models import tracking
from local_run import preflight
from local_run.console import RunConsole
from local_run.failure import failure_paragraph
from local_run.lock import output_dir_lock


def _root(tmp_path, genres, files=2, ext="wav"):
    for genre in genres:
        (tmp_path / genre).mkdir(parents=True)
        for i in range(files):
            (tmp_path / genre / f"{genre}.{i:05d}.{ext}").write_bytes(b"RIFF")
    return tmp_path


def test_missing_data_root_is_refused_before_tensorflow_loads(tmp_path):
    code = ("import sys, local_runner\n"
            "try:\n    local_runner.main(['--data-root', sys.argv[1]])\n"
            "except SystemExit as e:\n    print('code', e.code, 'tf' , 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nope")], capture_output=True, text=True,
                         cwd=str(local_runner._ROOT), timeout=120)
    assert "code 1 tf False" in out.stdout, out.stdout + out.stderr
    assert "does not exist" in out.stderr and "--data-root" in out.stderr and "Traceback" not in out.stderr


def test_genre_folders_must_match_the_label_set(tmp_path):
    scan = preflight.scan_data_root(str(_root(tmp_path, ["blues", "jazz", "polka"])))
    with pytest.raises(UserError) as refused:
        preflight.resolve_genres(PipelineConfig(), scan, genres_from_data=False)
    assert "not in the label set: polka" in str(refused.value) and "--genres-from-data" in str(refused.value)
    assert preflight.resolve_genres(PipelineConfig(), scan, genres_from_data=True) == ("blues", "jazz", "polka")
    named = PipelineConfig(genres=("polka", "jazz", "blues"))
    assert preflight.resolve_genres(named, scan, genres_from_data=False) == ("polka", "jazz", "blues")


def test_gtzan_layouts_and_one_genre(tmp_path):
    full = _root(tmp_path / "kaggle" / "genres_original", GENRES, ext="au")
    assert preflight.scan_data_root(str(tmp_path / "kaggle")).genres == tuple(sorted(GENRES))
    assert full.name == "genres_original"
    with pytest.raises(UserError, match="at least two genres"):
        preflight.resolve_genres(PipelineConfig(), preflight.scan_data_root(str(_root(tmp_path / "one", ["jazz"]))),
                                 genres_from_data=True)
    empty = _root(tmp_path / "noaudio", ["blues", "jazz"], ext="txt")
    with pytest.raises(UserError, match="0 genre folder"):
        preflight.resolve_genres(PipelineConfig(), preflight.scan_data_root(str(empty)), genres_from_data=True)


def test_a_genre_folder_given_as_the_data_root_is_named_with_its_parent(tmp_path):
    blues = _root(tmp_path / "gtzan", ["blues", "jazz"]) / "blues"
    with pytest.raises(UserError) as refused:
        preflight.resolve_genres(PipelineConfig(), preflight.scan_data_root(str(blues)), genres_from_data=False)
    assert "looks like the 'blues' genre's own folder" in str(refused.value)
    assert f"folder above it ({tmp_path / 'gtzan'})" in str(refused.value)
    other = _root(tmp_path / "mine", ["x"]) / "x"  # not a genre's name: the general advice
    with pytest.raises(UserError) as refused:
        preflight.resolve_genres(PipelineConfig(), preflight.scan_data_root(str(other)), genres_from_data=False)
    assert "add folders <root>/<genre>/" in str(refused.value)


def test_split_lists_are_checked(tmp_path):
    config = PipelineConfig()
    config.split.protocol, config.split.split_dir = "fault-filtered", str(tmp_path)
    (tmp_path / "train_filtered.txt").write_text("")
    with pytest.raises(UserError, match="valid_filtered.txt, test_filtered.txt"):
        preflight.check_split_dir(config)
    config.split.protocol = "lists-trainval"
    (tmp_path / "valid_filtered.txt").write_text("")
    preflight.check_split_dir(config)  # the test list is not needed: held out by design


def test_the_lock_refuses_a_second_process_naming_the_first(tmp_path):
    with output_dir_lock(str(tmp_path)):
        code = ("import sys\nfrom local_run.lock import output_dir_lock\nfrom config.errors import UserError\n"
                "try:\n    output_dir_lock(sys.argv[1]).__enter__()\nexcept UserError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             cwd=str(local_runner._ROOT), timeout=60)
        assert f"PID {os.getpid()}" in out.stdout and "--output-dir" in out.stdout, out.stdout + out.stderr
    with output_dir_lock(str(tmp_path)):  # released: taken again
        pass


def test_the_console_shows_own_lines_and_logs_everything(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"
    with RunConsole(str(log)) as console:
        print("[step] Transform ...", flush=True)
        print("W0000 00:00 cuda_executor.cc] failed call to cuInit: UNKNOWN ERROR (303)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-c", "import sys; print('child noise'); print('[ingest] 3/9 files', "
                        "file=sys.stderr)"], check=True)
        os.write(2, b"libtensorflow_io_plugins.so: undefined symbol: _ZN3tsl\n")
        console.show("Run stopped: closing words")
    shown = capfd.readouterr()
    terminal = shown.out + shown.err
    assert "[step] Transform ..." in terminal and "[ingest] 3/9 files" in terminal
    assert "closing words" in terminal
    assert "cuInit" not in terminal and "child noise" not in terminal and "undefined symbol" not in terminal
    logged = log.read_text()
    for line in ("[step] Transform", "cuInit", "child noise", "[ingest] 3/9", "undefined symbol", "closing words"):
        assert line in logged, line
    print("after")  # descriptors restored
    assert "after" in capfd.readouterr().out


def test_the_console_not_entered_shows_a_line_once_without_a_blank_after_it(tmp_path, capsys):
    RunConsole(str(tmp_path / "run.log")).show("Run finished.\n")
    assert capsys.readouterr().out == "Run finished.\n"


def test_failure_paragraphs_name_the_step_the_problem_and_the_log():
    wrapped = RuntimeError("beam wrapper")
    wrapped.__cause__ = UserError("The eval split has no tracks.", where="AudioExampleGen", fix="add tracks")
    assert find_user_error(wrapped) is wrapped.__cause__
    text = failure_paragraph(wrapped, "AudioExampleGen", "/x/run.log")
    assert text.startswith("Run stopped in AudioExampleGen: The eval split has no tracks (AudioExampleGen).")
    assert "Fix: add tracks" in text and text.endswith("Log: /x/run.log")
    other = failure_paragraph(ValueError("line 1\nArrowInvalid: schema"), "Transform", "/x/l.log")
    assert "Run failed in Transform: ValueError: ArrowInvalid: schema" in other and "--verbose" in other
    assert "Run the same command again" in failure_paragraph(KeyboardInterrupt(), "Trainer", "l")


def _config(tmp_path) -> PipelineConfig:
    return PipelineConfig(paths=PathsConfig(output_dir=str(tmp_path), mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db"))


def test_mlflow_runs_of_dead_processes_are_closed_and_failures_named(tmp_path):
    config = _config(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with tracking.training_run(config, "killed") as killed:
        killed_id = killed.info.run_id
    client = MlflowClient()
    client.set_tag(killed_id, tracking.PID_TAG, str(dead.pid))
    client.update_run(killed_id, status="RUNNING")  # as a SIGKILLed process leaves it
    since = int(time.time() * 1000) - 1
    with tracking.training_run(config, "later failure") as finished:
        finished_id = finished.info.run_id
    live = client.create_run(tracking.use_tracking(config), tags={tracking.PID_TAG: "1", tracking.HOST_TAG: "x"})

    assert tracking.close_orphaned_runs(config) == [killed_id]
    assert tracking.mark_failed(config, since, "ClipEvaluator") == [finished_id]
    mlflow.set_tracking_uri(config.mlflow_tracking_uri)
    assert client.get_run(killed_id).info.status == "KILLED"
    assert client.get_run(finished_id).info.status == "FAILED"
    assert client.get_run(finished_id).data.tags["genre.failed_component"] == "ClipEvaluator"
    assert client.get_run(live.info.run_id).info.status == "RUNNING"  # another host's run is left alone
