"""The families on EfficientAT's mn04 (AudioSet) train on the synthetic set through the real pipeline and learn it,
judged on held-out tracks (the bars and protocol of tests/families.py): efficientat (mn04's body) and
musicnn_efficientat (both bodies; on the learning signal) share one 32-kHz ingestion in one output folder. For both
the raw-audio `serving_default` signature is also checked against `from_examples` on a held-out clip.

They train on the release weights read from ../shared/models/efficientat (through the environment variable, as a
user may set it) and skip, naming the folder, where they are absent: mn04 with random weights says nothing about a
family, and the checks of their graphs, split, export and zero-shot tagger need no file
(models/efficientat_family_test.py, models/musicnn_efficientat_test.py, models/registry_test.py,
tagging/zero_shot_test.py).
"""
from __future__ import annotations

import pytest

from conftest import ROOT
from tests.families import assert_family_generalises

EFFICIENTAT_WEIGHTS = ROOT.parent / "shared" / "models" / "efficientat" / "mn04_as_mAP_432.pt"


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("mn04_families"))


@pytest.mark.parametrize("model", ["efficientat", "musicnn_efficientat"])
def test_mn04_family_generalises_to_held_out_tracks(model, output_dir, monkeypatch):
    if not EFFICIENTAT_WEIGHTS.is_file():
        pytest.skip(f"{EFFICIENTAT_WEIGHTS.name} not found in {EFFICIENTAT_WEIGHTS.parent} (the release weights are "
                    "never part of the repository)")
    monkeypatch.setenv("GENRE_EFFICIENTAT_WEIGHTS", str(EFFICIENTAT_WEIGHTS))
    assert_family_generalises(model, output_dir)
