"""The 22.05-kHz families train on the synthetic set through the real pipeline and learn it, judged on held-out
tracks: the CNN and the ANN from scratch, EfficientNet from random initialisation; one ingestion serves all three and
one Transform the CNN and EfficientNet (the same log-mel).

`local_runner.main(--until train)` runs AudioExampleGen, TFDV, Transform and Trainer (LocalDagRunner, SQLite
MLMD, DirectRunner); the trained SavedModel is then scored on the `test` split (stratified protocol: its tracks
are in no other split) through its `from_examples` signature, exactly as ClipEvaluator scores it, against the bars of
tests/families.py (the CNN and the ANN: 90 % of held-out clips and 80 % of their 3-s segments; EfficientNet, whose
whole network trains for a few epochs here: a learning signal, five times chance). The Trainer's wall time is read back from its MLMD
execution and printed, never asserted: speed is measured in bench/ (BENCHMARKS.md). For the ANN and
EfficientNet the raw-audio `serving_default` signature is also checked against `from_examples`
on a held-out clip (the CNN's: tests/test_pipeline_e2e.py). The pretrained families are in
tests/test_pretrained_families_e2e.py and tests/test_mn04_families_e2e.py; the helpers they share, in tests/families.py.
"""
from __future__ import annotations

import pytest

from config.settings import PipelineConfig
from models import efficientnet, registry
from tests.families import EPOCHS, assert_family_generalises, train_lines


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("families"))


@pytest.mark.parametrize("model", ["cnn", "ann"])
def test_family_generalises_to_held_out_tracks(model, output_dir):
    assert_family_generalises(model, output_dir)


def test_efficientnet_from_random_initialisation_learns_in_one_phase_and_serves(output_dir, monkeypatch):
    """As on a machine that cannot download ImageNet weights (forced here): the one line saying so, one training
    phase over the whole network, its bar on held-out tracks, and the raw-audio signature answering like
    from_examples. On the CNN's ingestion and Transform output, at its own rate (tests/families.py LEARNING_RATE)."""
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network (forced by the test)")
    monkeypatch.setattr(efficientnet.keras.utils, "get_file", offline)
    efficientnet.weights_source.cache_clear()
    try:
        assert_family_generalises("efficientnet", output_dir)
        # The trainer's own choice of one phase (decided once per process: this reads the run's decision).
        assert not registry.has_pretrained_backbone(PipelineConfig().with_model("efficientnet"))
    finally:
        efficientnet.weights_source.cache_clear()
    lines = train_lines(output_dir)
    assert sum("efficientnet: random initialisation" in line for line in lines) == 1, lines
    assert not any(line.startswith("[train] head:") for line in lines), lines  # no frozen phase
    # One phase: epochs 1, 2, ... of the whole budget, ended by the budget or by the stop rule's own line.
    epochs = [line.split()[2] for line in lines if line.startswith("[train] epoch ")]
    budget = EPOCHS["efficientnet"]
    assert epochs == [f"{k}/{budget}" for k in range(1, len(epochs) + 1)], lines
    assert len(epochs) == budget or any("stopping here (the data set is learnt" in line for line in lines), lines
