"""``python -m tagging DIR --zero-shot``: rows in the trained tagger's format from mn04's AudioSet logits.

The command-line runs use mn04 with random weights (the weights lookup and load stubbed), so CI needs no file;
with the release file in ../shared the scores themselves are checked against the module's own computation.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

import models.efficientat as efficientat
from config.settings import GENRES
from conftest import ROOT
from synthetic.generator import render_track
from tagging import outputs, zero_shot
from tagging.__main__ import main
from tagging.model import unload_models

WEIGHTS = ROOT.parent / "shared" / "models" / "efficientat" / "mn04_as_mAP_432.pt"
FILES = {"blues/a.wav": ("blues", 22050, 7.0), "metal/b.flac": ("metal", 44100, 4.0),
         "jazz/c.wav": ("jazz", 32000, 3.5)}  # path: (genre, sample rate, seconds)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zero-shot-library")
    for name, (genre, rate, seconds) in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, render_track(genre, 0, seconds=seconds, sample_rate=rate), rate)
    sf.write(root / "short.wav", render_track("pop", 0, seconds=1.0, sample_rate=22050), 22050)
    return root


@pytest.fixture
def random_mn04(monkeypatch, tmp_path):
    """mn04 with random weights: no release file is looked up or read."""
    stand_in = tmp_path / "random-mn04.pt"
    monkeypatch.setattr(efficientat, "weights_path", lambda explicit=None: stand_in)
    monkeypatch.setattr(efficientat, "load_mn04_weights", lambda model, path: 0)
    unload_models()
    yield stand_in
    unload_models()


def _rows(out: Path) -> tuple[list[dict], list[dict]]:
    read = lambda name: [json.loads(line) for line in (out / name).read_text().splitlines()]  # noqa: E731
    return read(outputs.JSONL_FILE), read(outputs.QUARANTINE_FILE)


def test_zero_shot_rows_have_the_trained_taggers_format(library, random_mn04, tmp_path):
    summary = main([str(library), "--out", str(tmp_path / "tags"), "--zero-shot", "--no-parquet"])
    rows, bad = _rows(tmp_path / "tags")
    assert [r["path"] for r in rows] == sorted(FILES)
    assert [(b["path"], b["reason"]) for b in bad] == [("short.wav", "too_short")]  # under one 3-s segment
    for row in rows:
        assert set(row) - set(outputs.INDEX_KEYS) == set(outputs.JSONL_KEYS)
        assert list(row["scores"]) == list(GENRES) and sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["genre"] == row["top3"][0]["genre"] == max(row["scores"], key=row["scores"].get)
        assert row["model_version"] == zero_shot.VERSION
        assert row["segments"] == int(FILES[row["path"]][2] // 3)  # 3-s segments, the family's
    csv_header = (tmp_path / "tags" / outputs.CSV_FILE).read_text().splitlines()[0]
    assert csv_header.split(",") == outputs.CSV_COLUMNS
    assert summary["model_path"] == str(random_mn04) and summary["sample_rate"] == 32000


def test_zero_shot_takes_no_trained_model(library, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(library), "--out", str(tmp_path), "--zero-shot", "--model-dir", str(tmp_path)])
    assert "--zero-shot tags without a trained model" in capsys.readouterr().err


def test_a_missing_weights_file_is_one_paragraph(library, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(library), "--out", str(tmp_path), "--zero-shot", "--efficientat-weights", str(tmp_path / "no.pt")])
    err = capsys.readouterr().err
    assert "does not exist" in err and "--efficientat-weights" in err and "Traceback" not in err


def test_with_the_release_weights_a_clips_scores_are_its_segments_mean_zero_shot_scores(library):
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS.name} not found in {WEIGHTS.parent} (reference files are never part of the repository)")
    config = zero_shot.family_config()
    model = zero_shot.ZeroShotModel(str(WEIGHTS), config)
    clip = render_track("metal", 0, seconds=7.0, sample_rate=32000)
    answer = model.signatures["serving_default"](waveform=tf.constant(clip), sample_rate=tf.constant(32000))
    n = config.audio.segment_samples
    segments = np.stack([clip[i * n:(i + 1) * n] for i in range(2)])
    pcm = tf.constant([np.round(np.clip(s, -1, 1) * 32767).astype("<i2").tobytes() for s in segments])
    logits = model.mn04(tf.transpose(model.tft_layer({"audio": pcm})["kaldi_log_mel"], [0, 2, 1]),
                        training=False)["logits"].numpy()
    np.testing.assert_allclose(answer["segment_scores"].numpy(), efficientat.zero_shot_genre_scores(logits), atol=1e-5)
    np.testing.assert_allclose(answer["scores"].numpy(), answer["segment_scores"].numpy().mean(axis=0), atol=1e-6)
