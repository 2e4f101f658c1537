"""The search spaces, the oracles behind --tune-oracle, and KerasTuner's loop over fold-scored trials."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from components.audio_example_gen.views import VIEW_INDEX_STRIDE
from config.settings import TUNE_ORACLES, PipelineConfig, TuneConfig
from models import embeddings, folds, tuning
from tests.testkit.training_inputs import SHAPE, segments_output, separable_segments, train_config, write_segments


@pytest.mark.parametrize("model, own", [("musicnn", {"heads"}), ("lstm", {"heads"}), ("cnn", {"band_shift"}),
                                        ("ann", set()), ("vgg", {"finetune_learning_rate"})])
def test_each_family_searches_around_its_preset(model, own):
    preset = PipelineConfig().with_model(model)
    space = tuning.search_space(preset)
    names = {hp.name for hp in space.space}
    assert names == {"learning_rate", "label_smoothing", "class_balance", *own}
    rates = sorted(next(hp for hp in space.space if hp.name == "learning_rate").values)
    assert rates[1] == preset.train.learning_rate and rates[0] < rates[1] < rates[2]
    for hp in space.space:  # the preset's value is the default wherever it is a choice
        if getattr(preset.train, hp.name) in hp.values:
            assert hp.default == getattr(preset.train, hp.name)


@pytest.mark.parametrize("oracle", TUNE_ORACLES)
def test_every_oracle_keeps_the_trial_budget(oracle):
    made = tuning.make_oracle(TuneConfig(enabled=True, trials=4, oracle=oracle),
                              tuning.search_space(PipelineConfig().with_model("ann")), 42, 9)
    assert made.max_trials == 4
    assert made.objective.name == tuning.OBJECTIVE


@pytest.mark.parametrize("oracle", TUNE_ORACLES)
def test_the_first_trial_is_the_preset(oracle, tmp_path):
    config = PipelineConfig().with_model("musicnn")
    made = tuning.make_oracle(TuneConfig(enabled=True, trials=3, oracle=oracle), tuning.search_space(config), 42, 9)
    made._set_project_dir(str(tmp_path), "search")
    first = made.create_trial("tuner0").hyperparameters.values
    t = config.train
    assert first == {"learning_rate": t.learning_rate, "label_smoothing": t.label_smoothing,
                     "class_balance": t.class_balance, "heads": t.heads}
    made.update_trial(made.ongoing_trials["tuner0"].trial_id, {tuning.OBJECTIVE: 0.5})
    made.end_trial(made.ongoing_trials["tuner0"])
    assert made.create_trial("tuner0").hyperparameters.values != first  # then the search proper


def _nearest_mean(config: PipelineConfig) -> folds.TrainAndPredict:
    def run(kept, stop, held):
        means = np.stack([kept.inputs[kept.labels == c].mean(axis=0) for c in (0, 1)])
        return np.eye(2)[np.argmin(((held[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)]
    return run


def _config(trials: int, max_minutes=None) -> PipelineConfig:
    config = PipelineConfig().with_model("ann")
    return dataclasses.replace(config, genres=("blues", "rock"), split=dataclasses.replace(config.split, group_by="track"),
                               tune=TuneConfig(enabled=True, trials=trials, max_minutes=max_minutes))


def test_the_search_runs_every_trial_and_reports_each(tmp_path, capsys):
    config = _config(3)
    tuner = tuning.FoldTuner(tuning.make_oracle(config.tune, tuning.search_space(config), 42, 8), config,
                             separable_segments(), _nearest_mean, str(tmp_path))
    tuner.search()
    assert [r.clip_accuracy for r in tuner.records] == [1.0, 1.0, 1.0]
    shown = capsys.readouterr().out
    assert [f"[tune] trial {k}/3:" in shown for k in (1, 2, 3)] == [True] * 3
    best = tuner.get_best_hyperparameters()[0].values
    assert best in [r.values for r in tuner.records]


def test_a_trial_that_takes_long_reports_each_fold_but_its_last(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tuning, "PROGRESS_SECONDS", 0.0)  # every fold counts as long
    config = _config(1)
    tuner = tuning.FoldTuner(tuning.make_oracle(config.tune, tuning.search_space(config), 42, 8), config,
                             separable_segments(), _nearest_mean, str(tmp_path))
    tuner.search()
    k = config.tune.folds
    lines = [line for line in capsys.readouterr().out.splitlines() if " trained, " in line]
    assert [line.split(":")[1].strip().split(" trained")[0] for line in lines] == [f"fold {i}/{k}" for i in range(1, k)]
    assert all(line.startswith("[tune] trial 1/1: ") and "left in this trial" in line for line in lines), lines


def test_the_preset_stays_unless_a_trial_beats_it_by_more_than_the_margin(tmp_path):
    config = _config(3)
    tuner = tuning.FoldTuner(tuning.make_oracle(config.tune, tuning.search_space(config), 42, 8), config,
                             separable_segments(), _nearest_mean, str(tmp_path))
    preset = dict(tuner.preset)
    other = {**preset, "label_smoothing": 0.3}
    assert other != preset and preset["label_smoothing"] == config.train.label_smoothing

    def record(number, values, correct):
        return tuning.TrialRecord(number, values, correct / 400, correct, 400, 1.0)
    tuner.records = [record(1, preset, 300), record(2, other, 304)]   # 4 clips: within 1 % of 400
    assert tuner.chosen().values == preset
    tuner.records = [record(1, preset, 300), record(2, other, 305)]   # 5 clips: beyond it
    assert tuner.chosen().values == other
    tuner.records = [record(1, other, 300), record(2, {**other, "class_balance": 1.0}, 301)]  # no preset trial
    assert tuner.chosen().number == 2


def test_hyperband_trains_the_preset_on_the_whole_budget_then_its_brackets(tmp_path):
    config = dataclasses.replace(_config(4), tune=TuneConfig(enabled=True, trials=4, oracle="hyperband"))
    budgets = []

    def trainer(trial_config: PipelineConfig) -> folds.TrainAndPredict:
        budgets.append(trial_config.train.epochs)
        return _nearest_mean(trial_config)
    tuner = tuning.FoldTuner(tuning.make_oracle(config.tune, tuning.search_space(config), 42, 8), config,
                             separable_segments(), trainer, str(tmp_path))
    tuner.search()
    assert [r.values == tuner.preset for r in tuner.records] == [True, False, False, False]
    assert budgets[0] == config.train.epochs and all(b < config.train.epochs for b in budgets[1:]), budgets
    assert tuner.chosen().values == tuner.preset  # every setting scores 1.0 here: none beats it by the margin


def test_no_trial_starts_once_the_time_budget_is_spent(tmp_path, capsys):
    config = _config(5, max_minutes=1e-6)
    tuner = tuning.FoldTuner(tuning.make_oracle(config.tune, tuning.search_space(config), 42, 8), config,
                             separable_segments(), _nearest_mean, str(tmp_path), max_seconds=config.tune.max_minutes * 60)
    tuner.search()
    assert len(tuner.records) == 1
    assert "no further trial" in capsys.readouterr().out


def test_heads_on_embeddings_train_as_the_trainers_and_score_every_clip():
    import tf_keras as keras

    config = _config(1)
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, heads=2, epochs=20, frozen_epochs=20, learning_rate=0.1, batch_size=4))
    inputs = keras.Input((2,))
    template = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    segments = separable_segments()
    assignment = folds.fold_of_tracks(segments.track_ids, segments.labels, 3, "track")
    score = folds.cross_validate(segments, assignment, tuning.train_heads(config, template))
    assert (score.clips, score.clip_accuracy) == (12, 1.0)


def test_segments_come_as_inputs_or_as_stored_embeddings_and_a_later_tuning_embeds_nothing(tmp_path, capsys):
    import tf_keras as keras

    config = train_config("cnn", batch_size=4)
    files = {}
    for split, tracks in (("train", range(4)), ("eval", range(4, 6))):
        (tmp_path / split).mkdir()
        write_segments(tmp_path / split / "part-0.gz", [(f"rock.{t:05d}", i, t % 3) for t in tracks for i in
                                                         (0, 1, 1 + VIEW_INDEX_STRIDE)])
        files[split] = [str(tmp_path / split / "part-0.gz")]
    tft_output = segments_output()
    body = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(4)])

    def load(body=None, store=None, scratch="scratch"):
        return tuning.load_segments(config, tft_output, files["train"], files["eval"], str(tmp_path / scratch),
                                    body, store)

    inputs = load()
    assert inputs.inputs.shape == (18, *SHAPE) and int(inputs.is_view.sum()) == 6
    store = embeddings.SegmentStore(str(tmp_path / "store"), salt="transform_graph/1")
    first = load(body, store)
    np.testing.assert_allclose(first.inputs, body(inputs.inputs).numpy(), rtol=1e-5, atol=1e-6)
    for a, b in ((first.labels, inputs.labels), (first.track_ids, inputs.track_ids), (first.is_view, inputs.is_view)):
        np.testing.assert_array_equal(a, b)
    again = load(body, embeddings.SegmentStore(store.root, store.salt), "scratch-2")
    np.testing.assert_array_equal(again.inputs, first.inputs)
    out = capsys.readouterr().out
    assert "[tune] frozen body: 18 of 18 segments to embed" in out and "[tune] frozen body: 0 of 18" in out
