"""The 16-kHz families on MSD-pretrained bodies (VGG, LSTM, musicnn) train on the synthetic set through the real
pipeline and are accurate on held-out tracks: the same bars and protocol as tests/test_model_families_e2e.py
(helpers in tests/families.py). They share one input format, so one ExampleGen and Transform run serves all
three; this module runs beside the 22.05-kHz one under pytest-xdist.

For musicnn the raw-audio `serving_default` signature is also checked against `from_examples` on a
held-out clip; the VGG and the LSTM take the same features at the same rate through the same signatures code
(models/signatures.py).
"""
from __future__ import annotations

import pytest

from tests.families import assert_family_generalises


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("pretrained_families"))


@pytest.mark.parametrize("model", ["vgg", "lstm", "musicnn"])
def test_family_generalises_to_held_out_tracks(model, output_dir):
    assert_family_generalises(model, output_dir)
