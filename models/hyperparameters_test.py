"""A tuned setting reaches the configuration under its own name and type; anything else is refused."""
from __future__ import annotations

import pytest

from config.settings import PipelineConfig
from models import hyperparameters


def test_the_tuners_bookkeeping_is_no_setting():
    config = {"space": [], "values": {"learning_rate": 0.003, "tuner/epochs": 4, "tuner/bracket": 0}}
    assert hyperparameters.chosen(config) == {"learning_rate": 0.003}
    assert hyperparameters.chosen(None) == {}


def test_chosen_values_replace_the_presets_with_the_settings_types():
    preset = PipelineConfig().with_model("musicnn")
    tuned = hyperparameters.apply(preset, {"learning_rate": 0.001, "heads": 3.0, "label_smoothing": 0})
    assert (tuned.train.learning_rate, tuned.train.heads, tuned.train.label_smoothing) == (0.001, 3, 0.0)
    assert isinstance(tuned.train.heads, int) and isinstance(tuned.train.label_smoothing, float)
    assert tuned.train.epochs == preset.train.epochs
    assert hyperparameters.apply(preset, {}) is preset


def test_a_name_that_is_no_train_setting_is_refused():
    with pytest.raises(ValueError, match="n_mels"):
        hyperparameters.apply(PipelineConfig(), {"n_mels": 64})
