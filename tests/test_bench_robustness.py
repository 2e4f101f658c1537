"""bench/robustness.py on synthetic clips and the stand-in model of testkit/serving.py, so CI covers the tool
without ../shared. The stand-in's genre follows a segment's loudness (RMS r -> genre round(10 r)), so a gain
must move its answers by a computable amount while a change of sample rate must not: the tables are checked
against that, not only for being there. BENCHMARKS.md is redirected to a temporary file."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

import bench.report
from audio.discovery import discover, input_pattern
from bench import channels, robustness
from components.audio_example_gen.ingest import INGESTED
from components.audio_example_gen.plan import plan_tasks
from components.audio_example_gen.quarantine import summarize, write_report
from config.settings import GENRES, SplitConfig
from testkit.serving import build_stand_in_model, stand_in_clip

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
    text = report_file.read_text()
    assert "<!-- bench:robustness-stand-in -->" in text
    assert 'Command: `make bench-robustness ARGS="--model-dir' in text and "Machine:" in text
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


def test_a_variant_gets_its_own_section_and_says_how_it_was_trained(model_base, data_root, report_file):
    common = ["--model-dir", model_base, "--family", "stand-in", "--data-root", str(data_root),
              "--split", "stratified", "--splits", "test", "--limit", "1"]
    robustness.main(common)
    robustness.main([*common, "--variant", "without device views",
                     "--trained-by", "python -m bench.accuracy --models stand-in --seeds 42"])
    text = report_file.read_text()
    assert "<!-- bench:robustness-stand-in -->" in text  # the preset's section is left in place
    variant = text.split("<!-- bench:robustness-stand-in-without-device-views -->")[1]
    assert variant.startswith("\n## Robustness to level, codec, sample rate and device: stand-in without device views\n")
    assert "Trained by `python -m bench.accuracy --models stand-in --seeds 42`." in variant
    assert "--variant 'without device views'" in variant  # the command as a shell takes it
    assert "Trained by" not in text.split("<!-- bench:robustness-stand-in-without-device-views -->")[0]


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


def test_a_variant_never_takes_the_familys_own_section():
    assert robustness.section_name("cnn", None) == (
        "robustness-cnn", "Robustness to level, codec, sample rate and device: cnn")
    assert robustness.section_name("cnn", "without views")[0] == "robustness-cnn-without-views"
    assert robustness.section_name("cnn", "!!")[0] != "robustness-cnn"  # nothing left of it to slug
