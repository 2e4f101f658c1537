"""evaluation/robustness.py on synthetic clips and the stand-in model of tests/testkit/serving.py, so CI covers the tool
without ../shared. The stand-in's genre follows a segment's loudness (RMS r -> genre round(10 r)), so a gain
must move its answers by a computable amount while a change of sample rate must not: the tables are checked
against that, not only for being there. BENCHMARKS.md is redirected to a temporary file; the shared table's
row rendering and replacement are checked on counted figures, without a model."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

import bench.report
from audio.discovery import discover, input_pattern
from evaluation import channels, robustness
from bench.report import first_cell, table_rows
from components.audio_example_gen.ingest import INGESTED
from components.audio_example_gen.plan import plan_tasks
from components.audio_example_gen.quarantine import summarize, write_report
from config.settings import GENRES, SplitConfig
from tests.testkit.serving import build_stand_in_model, stand_in_clip

TRACKS = 3  # a genre: the stratified split gives one track each to train, eval and test


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("robust-model") / "genre"
    build_stand_in_model(base, version=2)
    return str(base)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust-data")
    for genre in GENRES:
        (root / genre).mkdir()
        for i in range(TRACKS):
            # Each track shifted by i samples: the same level (the stand-in's answer) but other samples, so
            # ingestion's duplicate-audio check keeps every track.
            sf.write(root / genre / f"{genre}.{i:05d}.wav", np.roll(stand_in_clip(genre, seconds=6.0), i), 22050,
                     subtype="FLOAT")
    return root


@pytest.fixture
def report_file(tmp_path, monkeypatch):
    path = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(bench.report, "BENCHMARKS_MD", path)
    return path


def row(text: str, name: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {name}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_tables_follow_what_each_channel_does_to_the_stand_in(model_base, data_root, report_file, tmp_path):
    saved = tmp_path / "answers.json"
    robustness.main(["--model-dir", model_base, "--family", "stand-in", "--data-root", str(data_root),
                     "--split", "stratified", "--save", str(saved)])
    text = (tmp_path / "answers.md").read_text()  # the run's whole table, beside its answers
    assert text.startswith("## Robustness to level, codec, sample rate and device: stand-in\n")
    assert 'Command: `make robustness ARGS="--model-dir' in text and "Machine:" in text
    # its row of the shared table: the original, then -24 dB, +6 dB clipped, MP3, Ogg, 8 kHz, 16 kHz kept
    shared = row(report_file.read_text(), "stand-in")
    assert shared[:5] == ["stand-in", "1.000 (20/20)", "1.000 (10/10)", "10.0%", "20.0%"] and shared[8] == "100.0%"
    assert f"`{model_base}/2`" in text  # the newest version
    assert "20 held-out clips (eval 10, test 10;" in text and "protocol stratified" in text
    assert "with the lists" not in text and "No clip of the train split" in text
    assert "load average" in text and "every one." in text
    assert row(text, "the original") == ["the original (20 clips)", "1.000 (20/20)", "1.000 (10/10)", "-", "0", "-"]
    # -6 dB halves the RMS, (k + 0.2) / 10 -> about (k + 0.2) / 20: genres 0 and 1 (blues, classical) keep their
    # answer, every other genre drops to round((k + 0.2) / 2); all moves hold 2 clips, so the first three
    # alphabetically are shown
    assert row(text, "gain -6 dB") == ["gain -6 dB", "0.200 (4/20)", "0.200 (2/10)", "20.0% (4/20)", "0",
                                       "country -> classical (2), disco -> country (2), hiphop -> country (2)"]
    # -24 dB: 10 RMS = (k + 0.2) x 0.063, below 0.5 up to pop (blues), above for reggae and rock (classical)
    assert row(text, "gain -24 dB")[1:4] == ["0.100 (2/20)", "0.100 (1/10)", "10.0% (2/20)"]
    # +6 dB doubles the RMS, 10 RMS = 2 (k + 0.2): blues and rock stay, classical to country (k = 2), country to hiphop
    # (4), disco to metal (6), hiphop to reggae (8); from jazz on the square wave clips at full scale, RMS 1: rock
    assert row(text, "gain +6 dB (clipped at full scale)")[1:] == [
        "0.200 (4/20)", "0.200 (2/10)", "20.0% (4/20)", "0", "classical -> country (2), country -> hiphop (2), disco -> metal (2)"]
    for rate in ("44.1", "48", "16"):  # a square wave of 220.5 Hz keeps its RMS at any of these rates
        assert row(text, f"resampled to {rate} kHz")[1:5] == ["1.000 (20/20)", "1.000 (10/10)", "100.0% (20/20)", "0"], rate
    assert len(re.findall(r"^\| (gain|MP3|Ogg|resampled|device)", text, re.M)) == 11
    answers = json.loads(saved.read_text())
    assert len(answers) == 20 and {a["split"] for a in answers} == {"eval", "test"}
    assert all(a["answers"]["the original"] == a["genre"] for a in answers)
    # the near-ties line restates the saved margins of the clips a gain moved
    assert all(0.0 <= a["margin"] <= 1.0 for a in answers)
    moved = sorted(a["margin"] for a in answers if any(a["answers"][k] != a["answers"]["the original"]
                                                       for k in a["answers"] if k.startswith("gain ")))
    near = sum(a["margin"] < robustness.NEAR_TIE for a in answers)
    assert len(moved) == 18  # every clip but the two blues ones moves under some gain (the rows above)
    assert (f"Near ties: on {near} of 20 clips the original's two highest genre scores differ by less than 0.05; "
            f"the 18 clips whose answer a gain moved had margins {', '.join(f'{m:.3f}' for m in moved[:10])} "
            "(the 10 lowest).") in text


def test_near_ties_name_the_margins_of_the_answers_a_gain_moved_only():
    def clip(margin, **moved):
        answers = {"the original": "jazz", **{channels.gain_name(db): "jazz" for db in channels.GAINS_DB},
                   "device: x": "jazz", **moved}
        return {"answers": answers, "margin": margin}

    rows = [clip(0.01, **{"gain -6 dB": "blues"}), clip(0.3, **{"device: x": "rock"}), clip(0.02), clip(0.6)]
    assert robustness.near_ties_text(rows) == ("Near ties: on 2 of 4 clips the original's two highest genre scores "
                                               "differ by less than 0.05; the 1 clips whose answer a gain moved had "
                                               "margins 0.010.")
    assert robustness.near_ties_text([clip(0.5)]).endswith("less than 0.05.")  # no gain moved an answer
    assert robustness.near_ties_text([{"answers": {"the original": "refused"}, "margin": None}]) == ""


def test_limit_and_records_take_the_clips_the_run_ingested(model_base, data_root, report_file, tmp_path):
    # AudioExampleGen's records, written by its own report writer, for a plan that holds out different tracks
    tasks = plan_tasks(discover(str(data_root), input_pattern(str(data_root)), GENRES),
                       SplitConfig(protocol="hash", ratios=(0.34, 0.33, 0.33), salt="another"), GENRES)
    records = [t.record(status=INGESTED, segments=2, seconds=6.0) for t in tasks]
    uri = tmp_path / "run" / "pipeline_root" / "AudioExampleGen" / "quarantine" / "7"
    files_jsonl = tmp_path / "files.jsonl"  # as Beam writes it
    files_jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(str(uri), str(files_jsonl), summarize(records, 1.0, GENRES, data_root=str(data_root),
                                                       split_protocol="hash"))
    held_out = sorted(r["track_id"] for r in records if r["split"] == "test")
    robustness.main(["--model-dir", model_base, "--family", "stand-in", "--clips-from", str(tmp_path / "run"),
                     "--splits", "test", "--limit", "1", "--save", str(tmp_path / "a.json"), "--no-write"])
    answers = json.loads((tmp_path / "a.json").read_text())
    first_each = {}
    for track in held_out:
        first_each.setdefault(track.split(".")[0], track)
    assert sorted(a["track_id"] for a in answers) == sorted(first_each.values())
    assert not report_file.exists()  # --no-write


def test_a_variant_gets_its_own_row_and_its_file_says_how_it_was_trained(model_base, data_root, report_file,
                                                                        tmp_path):
    common = ["--model-dir", model_base, "--family", "stand-in", "--data-root", str(data_root),
              "--split", "stratified", "--splits", "test", "--limit", "1"]
    robustness.main([*common, "--save", str(tmp_path / "preset.json")])
    robustness.main([*common, "--variant", "without device views", "--save", str(tmp_path / "variant.json"),
                     "--trained-by", "python -m evaluation.accuracy --models stand-in --seeds 42"])
    text = report_file.read_text()
    assert text.count("<!-- bench:robustness -->") == 1
    assert [first_cell(r) for r in table_rows(text)] == ["stand-in", "stand-in (without device views)"]
    variant = (tmp_path / "variant.md").read_text()
    assert variant.startswith(
        "## Robustness to level, codec, sample rate and device: stand-in (without device views)\n")
    assert "Trained by `python -m evaluation.accuracy --models stand-in --seeds 42`." in variant
    assert "--variant 'without device views'" in variant  # the command as a shell takes it
    assert "Trained by" not in (tmp_path / "preset.md").read_text()


def test_what_a_user_can_get_wrong_ends_in_one_paragraph(model_base, data_root, tmp_path, capsys):
    for argv, message in (
            (["--model-dir", str(tmp_path / "none")], "No model at .*none: expected a SavedModel"),
            (["--model-dir", model_base, "--data-root", str(tmp_path / "nothing")], "Cannot list the clips: Audio root"),
            (["--model-dir", model_base, "--data-root", str(data_root), "--split", "stratified", "--splits", "dev"],
             "No clips of the dev split"),
            (["--model-dir", model_base, "--clips-from", str(tmp_path)], "expected one AudioExampleGen report")):
        with pytest.raises(SystemExit) as exit_info:
            robustness.main([*argv, "--family", "stand-in", "--no-write"])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err and err.count("\n") == 1, err


def counted(clip_answers: list[tuple[str, str, str, str]]) -> dict:
    """Figures of clips given as (genre, split, original answer, answer through every channel but -24 dB)."""
    names = list(channels.channels(0))
    rows = [{"genre": genre, "split": split, "answers": {
        robustness.ORIGINAL: original, **{n: original if n == "gain -24 dB" else other for n in names}}}
        for genre, split, original, other in clip_answers]
    return robustness.figures(rows)


def test_a_row_gives_the_original_and_the_answers_kept_through_the_compact_channels():
    figures = counted([("jazz", "test", "jazz", "jazz"), ("jazz", "eval", "jazz", "rock"),
                       ("rock", "test", "blues", "rock"), ("rock", "eval", "rock", "rock")])
    assert figures["gain -24 dB"].kept == 4 and figures["resampled to 8 kHz"].kept == 2
    assert robustness.summary_row("cnn", figures, "2026-01-02 03:04 UTC", "abc1234", "2 cores (x; AVX2)") == (
        "| cnn | 0.750 (3/4) | 0.500 (1/2) | 100.0% | 50.0% | 50.0% | 50.0% | 50.0% | 50.0% | 0.750; 50.0% "
        "| 2026-01-02 03:04 (abc1234) | 2 cores (x; AVX2) |")
    assert robustness.table(figures).splitlines()[3] == (  # the whole table's -6 dB line, from the same figures
        "| gain -6 dB | 0.750 (3/4) | 1.000 (2/2) | 50.0% (2/4) | 0 | blues -> rock (1), jazz -> rock (1) |")


def test_a_rerun_replaces_its_row_keeps_the_others_and_the_order_is_fixed(report_file):
    figures = counted([("jazz", "test", "jazz", "jazz")])

    def run(label, commit):
        robustness.write_row(robustness.summary_row(label, figures, "2026-01-02 03:04 UTC", commit, "cpu"))

    for label in ("stand-in", "musicnn (without device views)", "musicnn", "cnn", "lstm"):
        run(label, "first")
    run("musicnn", "second")
    text = report_file.read_text()
    rows = table_rows(text)
    assert [first_cell(r) for r in rows] == ["cnn", "lstm", "musicnn", "musicnn (without device views)", "stand-in"]
    assert "(second)" in rows[2] and all("(first)" in r for r in rows[:2] + rows[3:])
    assert text.count("Channels (evaluation/channels.py)") == 1 and text.count("Answers kept:") == 1


def test_a_variant_is_its_familys_row_key_with_the_setting():
    assert robustness.row_label("cnn", None) == "cnn"
    assert robustness.row_label("musicnn", "without device views") == "musicnn (without device views)"
    assert robustness.row_rank("cnn") < robustness.row_rank("cnn (x)") < robustness.row_rank("musicnn")
    assert robustness.row_rank("musicnn_efficientat") < robustness.row_rank("aaa")  # other families last
