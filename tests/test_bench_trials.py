"""bench.trials' settings parser (fast, no training)."""
from __future__ import annotations

import pytest

from bench import trials
from config.settings import PipelineConfig


def test_settings_change_a_copy_of_the_preset_with_the_setting_types():
    preset = PipelineConfig().with_model("cnn")
    config = trials.apply_settings(preset, ["train.class_balance=0.5", "train.early_stopping_patience=5",
                                            "train.spec_augment=False", "features.n_mels=64", "train.lr_schedule=plateau"])
    t = config.train
    assert (t.class_balance, t.early_stopping_patience, t.spec_augment, t.lr_schedule) == (0.5, 5, False, "plateau")
    assert config.features.n_mels == 64 and preset.features.n_mels == 128 and preset.train.class_balance == 0.0
    assert trials.apply_settings(preset, ["train.early_stopping_patience=None"]).train.early_stopping_patience is None


@pytest.mark.parametrize("setting", ["gate.min_accuracy=0", "train.nope=1", "train.spec_augment=yes", "train.epochs"])
def test_bad_settings_are_refused(setting):
    with pytest.raises(SystemExit):
        trials.apply_settings(PipelineConfig(), [setting])
