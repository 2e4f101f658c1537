"""The families on MSD's pretrained bodies (VGG, LSTM, musicnn) train on the synthetic set through the real pipeline
and learn it, judged on held-out tracks: the same bars and protocol as tests/test_model_families_e2e.py (helpers in
tests/families.py); the VGG, whose test keeps its fine-tuning phase for one epoch, against the learning signal. They
share one input format, so one ExampleGen and Transform run serves all three. The families on EfficientAT's mn04 are
in tests/test_mn04_families_e2e.py; under pytest-xdist these modules run beside the 22.05-kHz one.

For musicnn the raw-audio `serving_default` signature is also checked against `from_examples` on a held-out clip;
the VGG and the LSTM take musicnn's features at the same rate through the same signatures code
(models/signatures.py).
"""
from __future__ import annotations

import re

import pytest

from tests.families import EPOCHS, assert_family_generalises, train_lines


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("pretrained_families"))


@pytest.mark.parametrize("model", ["vgg", "lstm", "musicnn"])
def test_family_generalises_to_held_out_tracks(model, output_dir):
    assert_family_generalises(model, output_dir)
    if model == "vgg":  # both phases ran: the head on the frozen body's embeddings, then fine-tuning
        lines = train_lines(output_dir)
        assert any(re.fullmatch(r"\[train\] head: \d+ epochs on the frozen body's embeddings; fine-tuning for up to "
                                r"\d+ epochs", line) for line in lines), lines
        assert f"[train] epoch {EPOCHS['vgg']}/{EPOCHS['vgg']}" in "\n".join(lines)
