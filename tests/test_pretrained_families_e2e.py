"""The families on pretrained bodies train on the synthetic set through the real pipeline and learn it, judged on
held-out tracks: the same bars and protocol as tests/test_model_families_e2e.py (helpers in tests/families.py); the
VGG, whose test keeps its fine-tuning phase for one epoch, and the pair of bodies against the learning signal.
The 16-kHz ones on MSD bodies (VGG, LSTM, musicnn) share one input format, so one ExampleGen and Transform run
serves all three; efficientat (EfficientAT mn04, AudioSet) and musicnn_efficientat (both bodies) share one 32-kHz
ingestion in the same output folder. This module runs beside the 22.05-kHz one under pytest-xdist.

For musicnn, efficientat and musicnn_efficientat the raw-audio `serving_default` signature is also checked against
`from_examples` on a held-out clip; the VGG and the LSTM take musicnn's features at the same rate through the same signatures
code (models/signatures.py).

The mn04 families train on the release weights read from ../shared/models/efficientat (through the environment
variable, as a user may set it) and skips, naming the folder, where they are absent: mn04 with random weights
says nothing about a family, and the checks of their graphs, split, export and zero-shot tagger need no file
(models/efficientat_family_test.py, models/musicnn_efficientat_test.py, models/registry_test.py,
tagging/zero_shot_test.py).
"""
from __future__ import annotations

import glob
import os
import re

import pytest

from conftest import ROOT
from tests.families import EPOCHS, assert_family_generalises

EFFICIENTAT_WEIGHTS = ROOT.parent / "shared" / "models" / "efficientat" / "mn04_as_mAP_432.pt"


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("pretrained_families"))


@pytest.mark.parametrize("model", ["vgg", "lstm", "musicnn"])
def test_family_generalises_to_held_out_tracks(model, output_dir):
    assert_family_generalises(model, output_dir)
    if model == "vgg":  # both phases ran: the head on the frozen body's embeddings, then fine-tuning
        log = max(glob.glob(os.path.join(output_dir, "logs", "run-*.log")), key=os.path.getmtime)
        with open(log, errors="replace") as f:
            lines = [line.strip() for line in f if line.startswith("[train] ")]
        assert any(re.fullmatch(r"\[train\] head: \d+ epochs on the frozen body's embeddings; fine-tuning for up to "
                                r"\d+ epochs", line) for line in lines), lines
        assert f"[train] epoch {EPOCHS['vgg']}/{EPOCHS['vgg']}" in "\n".join(lines)


@pytest.mark.parametrize("model", ["efficientat", "musicnn_efficientat"])
def test_mn04_family_generalises_to_held_out_tracks(model, output_dir, monkeypatch):
    if not EFFICIENTAT_WEIGHTS.is_file():
        pytest.skip(f"{EFFICIENTAT_WEIGHTS.name} not found in {EFFICIENTAT_WEIGHTS.parent} (the release weights are "
                    "never part of the repository)")
    monkeypatch.setenv("GENRE_EFFICIENTAT_WEIGHTS", str(EFFICIENTAT_WEIGHTS))
    assert_family_generalises(model, output_dir)
