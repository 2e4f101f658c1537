"""evaluation.accuracy's arguments and report, with made-up results (fast, no pipeline run)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import local_runner
from evaluation import accuracy
from config.settings import GENRES, SPLITS
from models import metrics
from pipeline.flags import config_from_args


def test_runner_args_turn_the_gate_off_and_name_the_protocol(tmp_path):
    argv = accuracy.runner_args("vgg", tmp_path / "real-vgg", "/data", "/splits", epochs=12, beam_mode="in_memory",
                             seed=43)
    config = config_from_args(local_runner.parse_args(argv))
    assert config.train.seed == 43
    assert config.split.protocol == "lists-trainval" and config.split.split_dir == "/splits"
    assert config.train.model == "vgg" and config.train.epochs == 12
    assert (config.gate.min_accuracy, config.gate.min_clip_accuracy) == (0.0, 0.0)
    assert config.paths.output_dir == str(tmp_path / "real-vgg")
    assert "--direct_running_mode=in_memory" in config.beam_args
    default = config_from_args(local_runner.parse_args(accuracy.runner_args("cnn", tmp_path, "/d", "/s", None)))
    assert default.beam_args == config_from_args(local_runner.parse_args(["--split-dir", "/s"])).beam_args
    assert default.train.epochs == 30
    assert default.audio.hop_seconds == default.audio.segment_seconds
    overlapping = config_from_args(local_runner.parse_args(accuracy.runner_args(
        "musicnn", tmp_path, "/d", "/s", None, pipeline_args=["--hop-seconds=1.5"])))
    assert overlapping.audio.hop_seconds == 1.5 and overlapping.split.protocol == "lists-trainval"


def test_parse_beam_modes():
    assert accuracy.parse_beam_modes(["vgg=multi_processing"], ["cnn", "vgg"]) == {"cnn": None, "vgg": "multi_processing"}
    assert accuracy.parse_beam_modes(["in_memory"], ["cnn", "vgg"]) == {"cnn": "in_memory", "vgg": "in_memory"}
    with pytest.raises(SystemExit):
        accuracy.parse_beam_modes(["vgg=threads"], ["vgg"])


def test_parse_seeds():
    assert accuracy.parse_seeds("42,43,44") == [42, 43, 44]
    for bad in ("", "42,42", "4x"):
        with pytest.raises(SystemExit):
            accuracy.parse_seeds(bad)


def test_parse_epochs():
    assert accuracy.parse_epochs(["vgg=12", "cnn=30"]) == {"vgg": 12, "cnn": 30}
    with pytest.raises(SystemExit):
        accuracy.parse_epochs(["resnet=3"])


def fake_result(model: str) -> dict:
    counts = {g: {s: {"tracks": 0, "segments": 0} for s in SPLITS} for g in GENRES}
    counts["rock"]["test"] = {"tracks": 2, "segments": 20}
    counts["jazz"]["test"] = {"tracks": 1, "segments": 10}
    counts["rock"]["train"] = {"tracks": 5, "segments": 50}
    labels = np.array([9] * 20 + [5] * 10)
    probs = np.eye(10)[np.array([9] * 10 + [0] * 10 + [5] * 10)]
    tracks = np.array([b"rock.1"] * 10 + [b"rock.2"] * 10 + [b"jazz.1"] * 10)
    scores = metrics.score(tracks, probs, labels)
    gate = {"candidate_segment_accuracy": scores.segment_accuracy, "candidate_clip_accuracy": scores.clip_accuracy,
            "candidate_segments": 30.0, "candidate_clips": 3.0}
    return {"model": model, "gate": gate, "scores": scores, "counts": counts, "states": {
            "Trainer": {"state": "ran", "seconds": 12.0}, "Transform": {"state": "cached", "seconds": 3.0}}, "wall": 30.0, "max_epochs": 30,
            "mlflow": {"epochs_trained": 7.0, "eval_segment_accuracy": 0.5, "eval_clip_accuracy": 0.5,
                       "eval_clips": 4.0}, "output_dir": "/tmp/real-" + model}


def fake_finished(model: str, seed: int) -> dict:
    """fake_result with what main adds to a finished run."""
    return {**fake_result(model), "seed": seed, "finished": f"2026-11-22 20:0{seed - 42} UTC", "beam": "-"}


def finished_run(folder, model: str, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    accuracy.save_result(fake_finished(model, seed), folder / accuracy.result_name(model, seed))


def test_finished_runs_are_reused_and_missing_ones_named_without_running_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(accuracy, "RESULTS_DIR", tmp_path / "committed")
    for seed in (42, 43):
        finished_run(tmp_path / "bench-logs", "cnn", seed)
    accuracy.main(["--models", "cnn,vgg", "--seeds", "42,43", "--output-root", str(tmp_path), "--reuse",
                "--finished-only", "--no-write"])
    out = capsys.readouterr().out
    assert "cnn seed 43: the finished run of 2026-11-22 20:01 UTC reused" in out
    assert "Not run (asked for, no finished run to report): vgg seed 42, vgg seed 43." in out
    assert "| cnn | 42, 43 |" in out
    assert not (tmp_path / "real-vgg").exists()  # nothing ran


def test_a_result_file_is_strict_json_and_reads_back_as_the_same_figures(tmp_path):
    import json

    result = fake_finished("cnn", 42)
    result["mlflow"]["eval_loss"] = float("nan")
    path = tmp_path / "r.json"
    accuracy.save_result(result, path)
    json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    back = accuracy.load_result(path)
    assert "eval_loss" not in back["mlflow"]
    assert back["mlflow"]["eval_clip_accuracy"] == 0.5
    np.testing.assert_array_equal(back["scores"].clip_confusion, result["scores"].clip_confusion)
    assert back["scores"].clip_accuracy == result["scores"].clip_accuracy
    assert accuracy.report([back], "x") == accuracy.report([{**result, "mlflow": back["mlflow"]}], "x")


def test_reuse_committed_falls_back_to_the_committed_copy_and_plain_reuse_does_not(tmp_path, capsys, monkeypatch):
    committed = tmp_path / "committed"
    monkeypatch.setattr(accuracy, "RESULTS_DIR", committed)
    finished_run(committed, "cnn", 42)
    finished_run(tmp_path / "root" / "bench-logs", "cnn", 43)
    args = ["--models", "cnn", "--seeds", "42,43", "--output-root", str(tmp_path / "root"), "--finished-only",
            "--no-write"]
    accuracy.main([*args, "--reuse"])
    assert "Not run (asked for, no finished run to report): cnn seed 42." in capsys.readouterr().out
    accuracy.main([*args, "--reuse-committed"])
    out = capsys.readouterr().out
    assert f"cnn seed 42: the finished run of 2026-11-22 20:00 UTC reused ({committed}" in out
    assert f"cnn seed 43: the finished run of 2026-11-22 20:01 UTC reused ({tmp_path / 'root'}" in out
    assert "| cnn | 42, 43 |" in out


def test_writing_the_report_commits_the_runs_it_reports(tmp_path, capsys, monkeypatch):
    from bench import report

    committed = tmp_path / "committed"
    monkeypatch.setattr(accuracy, "RESULTS_DIR", committed)
    monkeypatch.setattr(report, "BENCHMARKS_MD", tmp_path / "BENCHMARKS.md")
    finished_run(tmp_path / "root" / "bench-logs", "cnn", 42)
    accuracy.main(["--models", "cnn", "--seeds", "42", "--output-root", str(tmp_path / "root"), "--reuse",
                "--finished-only"])
    assert (committed / accuracy.result_name("cnn", 42)).read_text() == \
        (tmp_path / "root" / "bench-logs" / accuracy.result_name("cnn", 42)).read_text()
    assert "| cnn | 42 |" in (tmp_path / "BENCHMARKS.md").read_text()


def test_nothing_finished_to_report_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "RESULTS_DIR", tmp_path / "committed")
    with pytest.raises(SystemExit, match="No finished run to report for vgg seed 42.*drop --finished-only"):
        accuracy.main(["--models", "vgg", "--seeds", "42", "--output-root", str(tmp_path), "--reuse",
                    "--finished-only", "--no-write"])


def test_report_names_protocol_genres_and_per_genre_clips():
    text = accuracy.report([fake_result("cnn")], "make accuracy")
    assert accuracy.PROTOCOL in text
    assert "jazz (1), rock (2)" in text
    assert "jazz 1/1, rock 1/2" in text
    assert "0.667" in text and "0.70: NOT met" in text
    assert "fault-filtered-final" in text
    assert "| total | 5 / 50 | 0 / 0 | 3 / 30 |" in text
    assert "| 7 | 12 | 15 | 30 |" in text  # epochs, Trainer s, all components s (cached ones as first run), wall s
    assert "3 s segments, no overlap" in text
    overlapping = {**fake_result("musicnn"), "params": {"audio.hop_seconds": "1.5"}}
    assert "3 s segments, one every 1.5 s (overlapping)" in accuracy.report([overlapping], "make accuracy")


def test_report_uses_the_settings_the_run_logged():
    cfg = accuracy.trained_config("vgg", {"train.learning_rate": "0.01", "train.epochs": "12", "train.max_steps": "None",
                                       "features.n_mels": "96", "train.spec_augment": "True"})
    assert cfg.train.learning_rate == 0.01 and cfg.train.epochs == 12 and cfg.train.max_steps is None
    assert cfg.features.n_mels == 96 and cfg.audio.sample_rate == 16000


def test_report_shows_the_best_epoch_when_logged():
    result = fake_result("vgg")
    result["mlflow"]["best_epoch"] = 5.0
    assert "| 7 (best val_loss: epoch 5) |" in accuracy.report([result], "make accuracy")


def test_report_splits_the_vgg_epochs_into_head_and_fine_tuning():
    result = fake_result("vgg")
    result["mlflow"].update(epochs_trained=25.0, head_epochs=9.0, best_epoch=24.0)
    result["params"] = {"train.epochs": "30", "train.frozen_epochs": "20"}
    text = accuracy.report([result], "make accuracy")
    assert "| 25 (head 9 + fine-tuning 16; best val_loss: epoch 24) |" in text
    assert "for the rest of the 30-epoch budget (the head's unused epochs included, so at least 10)" in text


def test_report_names_schedule_stopping_and_augmentation_as_logged():
    result = fake_result("cnn")
    result["params"] = {"train.early_stopping_patience": "None", "train.lr_schedule": "cosine",
                        "train.mixup_alpha": "0.2", "train.max_steps": "None"}
    text = accuracy.report([result], "make accuracy")
    assert "cosine learning-rate decay to 0 over the epochs" in text
    assert "no early stopping (the last epoch's weights)" in text
    assert "mixup alpha 0.2" in text
    cfg = accuracy.trained_config("cnn", {"train.early_stopping_patience": "7", "train.max_steps": "12"})
    assert cfg.train.early_stopping_patience == 7 and cfg.train.max_steps == 12


def test_report_names_averaged_heads_as_logged_and_one_head_for_runs_before_the_option():
    result = fake_result("musicnn")
    result["params"] = {"train.heads": "5"}
    assert "5 heads on the frozen body's embeddings, each from its own seed, averaged" in accuracy.report(
        [result], "make accuracy")
    result["params"] = {}  # a result file written before --heads existed: one head, whatever the preset says now
    assert "heads on the frozen body's embeddings" not in accuracy.report([result], "make accuracy")


def test_report_gives_mean_and_spread_over_seeds_per_genre_figures_and_the_confusion_matrix():
    second = fake_result("cnn")
    second["seed"] = 43
    # seed 43 gets both rock clips right: clip accuracy 1.0, rock 2/2
    probs = np.eye(10)[np.array([9] * 20 + [5] * 10)]
    labels = np.array([9] * 20 + [5] * 10)
    tracks = np.array([b"rock.1"] * 10 + [b"rock.2"] * 10 + [b"jazz.1"] * 10)
    second["scores"] = metrics.score(tracks, probs, labels)
    second["gate"] = {**second["gate"], "candidate_clip_accuracy": 1.0, "candidate_segment_accuracy": 1.0}
    first = {**fake_result("cnn"), "seed": 42}
    first["counts"]["rock"]["test"]["tracks"] = accuracy.FLOOR_CLIPS  # rock counts for the floor
    text = accuracy.report([first, second], "make accuracy")
    assert "| cnn | 42, 43 | **0.833 (0.667-1.000)** | 0.833 (0.667-1.000) |" in text
    assert "0.70: met" in text
    assert f"| rock | {accuracy.FLOOR_CLIPS} | 0.750 (0.500-1.000) |" in text and "| jazz | 1 | 1.000 (1.000-1.000) |" in text
    assert "| rock | 1 | . | . | . | . | . | . | . | . | 3 |" in text  # blues column first: 1 rock clip as blues
    assert "| jazz | . | . | . | . | . | 2 | . | . | . | . |" in text
    assert "none |" in text  # rock at 0.75 is above the floor
    low = {**first, "scores": metrics.score(tracks[:20], np.eye(10)[np.zeros(20, int)], labels[:20])}
    assert "| rock 0.00 |" in accuracy.report([low, {**low, "seed": 43}], "make accuracy")


def test_parse_fusions():
    assert accuracy.parse_fusions(["musicnn+efficientat"]) == [("musicnn", "efficientat")]
    for bad in ("musicnn", "musicnn+musicnn", "musicnn+resnet"):
        with pytest.raises(SystemExit, match="--fuse expects two or more distinct families"):
            accuracy.parse_fusions([bad])


def scored_by(rows: dict[str, list[float]], labels: dict[str, int]) -> metrics.ClipAccumulator:
    """A ClipAccumulator of one segment per clip: what a model's pass over the test split leaves."""
    accumulator = metrics.ClipAccumulator()
    tracks = sorted(rows)
    accumulator.add(np.array([t.encode() for t in tracks]), np.array([rows[t] for t in tracks]),
                    np.array([labels[t] for t in tracks]))
    return accumulator


def test_late_fusion_rescores_each_familys_model_and_averages_the_clip_votes(monkeypatch):
    """Each family is sure where it is right and unsure where it is wrong, on different clips; the models' passes
    are made-up accumulators here (ClipEvaluator's tests run real models through score_split)."""
    labels = {"rock.1": 9, "jazz.1": 5, "blues.1": 0}
    passes = {"/m/musicnn": scored_by({"rock.1": np.eye(10)[9] * 0.9 + 0.01, "jazz.1": np.eye(10)[0] * 0.3 + 0.07,
                                       "blues.1": np.eye(10)[0] * 0.9 + 0.01}, labels),
              "/m/efficientat": scored_by({"rock.1": np.eye(10)[9] * 0.9 + 0.01, "jazz.1": np.eye(10)[5] * 0.9 + 0.01,
                                           "blues.1": np.eye(10)[3] * 0.3 + 0.07}, labels)}
    monkeypatch.setattr(accuracy, "test_accumulator", lambda examples_uri, model_uri: passes[model_uri])
    runs = [{**fake_finished(m, 42), "model_uri": f"/m/{m}", "examples_uri": f"/e/{m}"}
            for m in ("musicnn", "efficientat")]
    for r in runs:
        r["gate"] = {**r["gate"], "candidate_clip_accuracy": 2 / 3}
    fused = accuracy.fused_run(runs, GENRES)
    assert fused["clips"] == 3 and fused["clip_accuracy"] == 1.0 and fused["members"] == [2 / 3, 2 / 3]
    text = accuracy.fusion_text(("musicnn", "efficientat"), [fused], GENRES)
    assert "| 42 | **1.000** (3) | 0.667 | 0.667 |" in text and "blues 1.00, jazz 1.00, rock 1.00" in text

    runs[1]["gate"] = {**runs[1]["gate"], "candidate_clip_accuracy": 1.0}
    with pytest.raises(SystemExit, match="no longer scores what its gate did"):
        accuracy.fused_run(runs, GENRES)
    del runs[1]["model_uri"]
    with pytest.raises(SystemExit, match="predates recorded model and examples locations"):
        accuracy.fused_run(runs, GENRES)


MN04_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "models" / "efficientat" / "mn04_as_mAP_432.pt"


def write_test_split(root: Path, clips: dict[str, tuple[int, np.ndarray]], segment_samples: int) -> None:
    """A raw ExampleGen test split (GZIP TFRecords of int16 segments, label, track id) of whole-segment clips."""
    import tensorflow as tf

    (root / "Split-test").mkdir(parents=True)
    with tf.io.TFRecordWriter(str(root / "Split-test" / "data.gz"), options="GZIP") as writer:
        for track, (label, clip) in clips.items():
            for start in range(0, len(clip), segment_samples):
                pcm = np.round(clip[start:start + segment_samples] * 32767).astype("<i2").tobytes()
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pcm])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    "track_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[track.encode()])),
                })).SerializeToString())


def test_zero_shot_scores_the_test_segments_as_the_tagger_answers_their_clips(tmp_path, monkeypatch):
    """Each clip's zero-shot answer from the test split's segments is the one the tagger's zero-shot model gives the
    whole clip (the mean of the same segments' scores); the section names the figure and the per-genre rates."""
    if not MN04_WEIGHTS.is_file():
        pytest.skip(f"{MN04_WEIGHTS.name} not found in {MN04_WEIGHTS.parent} (the release weights are never part of "
                    "the repository)")
    import tensorflow as tf

    from synthetic.generator import render_track
    from tagging.zero_shot import ZeroShotModel, family_config

    monkeypatch.setenv("GENRE_EFFICIENTAT_WEIGHTS", str(MN04_WEIGHTS))
    audio = family_config().audio
    clips = {f"{genre}.00000": (GENRES.index(genre), render_track(genre, 0, seconds=2 * audio.segment_seconds,
                                                                  sample_rate=audio.sample_rate, seed=3))
             for genre in ("classical", "metal")}
    write_test_split(tmp_path, clips, audio.segment_samples)
    run = accuracy.zero_shot_run(str(tmp_path), GENRES)
    assert (run["clips"], run["segments"]) == (2, 4)
    model = ZeroShotModel(str(MN04_WEIGHTS), family_config())
    served = {track: model.classify(tf.constant(clip, tf.float32), tf.constant(audio.sample_rate))["genre"]
              .numpy().decode() for track, (_, clip) in clips.items()}
    for track, (label, _) in clips.items():  # each clip's row of the confusion holds its one answer: the tagger's
        assert np.asarray(run["clip_confusion"])[label, GENRES.index(served[track])] == 1
    assert run["clip_accuracy"] == sum(served[t] == GENRES[label] for t, (label, _) in clips.items()) / 2
    text = accuracy.zero_shot_text(run, str(tmp_path), GENRES)
    assert f"**{run['clip_accuracy']:.3f}** (2 clips)" in text and "classical" in text


def test_reuse_committed_finds_the_committed_runs(tmp_path):
    found = accuracy.finished_result("cnn", 42, tmp_path, committed=True)
    assert found is not None and found.parent == accuracy.RESULTS_DIR, accuracy.RESULTS_DIR
    assert accuracy.load_result(found)["model"] == "cnn"
