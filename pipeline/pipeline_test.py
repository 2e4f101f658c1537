"""create_pipeline's wiring, checked on the pipeline object (nothing runs here; tests/ runs it)."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from config.settings import PipelineConfig, TuneConfig
from pipeline.flags import add_cli_arguments, config_from_args
from pipeline.pipeline import CLIP_EVALUATOR_ID, RESOLVER_ID, create_pipeline, eval_config


def node_ids(config: PipelineConfig, until: str = "push") -> list[str]:
    return [node.id for node in create_pipeline(config, "/data", until=until).components]


def accuracy_threshold(config: PipelineConfig):
    spec = eval_config(config).metrics_specs[0].metrics[0]
    assert spec.class_name == "SparseCategoricalAccuracy"
    return spec.per_slice_thresholds[0].threshold


def without_baseline() -> PipelineConfig:
    config = PipelineConfig()
    config.gate = dataclasses.replace(config.gate, compare_to_last_blessed=False)
    return config


def test_the_gate_compares_with_the_last_blessed_model_by_default():
    config = PipelineConfig()
    assert RESOLVER_ID in node_ids(config)
    threshold = accuracy_threshold(config)
    assert threshold.value_threshold.lower_bound.value == config.gate.min_accuracy
    assert threshold.change_threshold.absolute.value == pytest.approx(-config.gate.max_accuracy_drop)


def test_without_a_baseline_there_is_no_resolver_and_no_change_threshold():
    ids = node_ids(without_baseline())
    assert RESOLVER_ID not in ids
    assert {"Evaluator", CLIP_EVALUATOR_ID, "Pusher"} <= set(ids)
    threshold = accuracy_threshold(without_baseline())
    assert threshold.HasField("value_threshold") and not threshold.HasField("change_threshold")


def test_the_no_baseline_flag_reaches_the_gate_config():

    parser = add_cli_arguments(argparse.ArgumentParser())
    assert config_from_args(parser.parse_args([])).gate.compare_to_last_blessed
    assert not config_from_args(parser.parse_args(["--no-baseline"])).gate.compare_to_last_blessed


def test_hop_seconds_sets_overlapping_segments_and_refuses_a_hop_beyond_the_segment():

    parser = add_cli_arguments(argparse.ArgumentParser())
    default = config_from_args(parser.parse_args([])).audio
    assert default.hop_seconds == default.segment_seconds  # no overlap unless asked
    overlapping = config_from_args(parser.parse_args(["--hop-seconds", "1.5"])).audio
    assert (overlapping.segment_seconds, overlapping.hop_seconds) == (3.0, 1.5)
    assert overlapping.hop_samples == overlapping.segment_samples // 2
    for bad in ("0", "-1"):  # argparse's refusal (test_a_flag_out_of_range_is_refused_before_anything_runs)
        with pytest.raises(SystemExit):
            parser.parse_args(["--hop-seconds", bad])
    with pytest.raises(SystemExit, match="--hop-seconds 4: give a distance between segment starts"):
        config_from_args(parser.parse_args(["--hop-seconds", "4"]))


def test_fine_tuning_flags_reach_the_train_config():
    """musicnn's measured opt-in (README, "Benchmarks and results"): one epoch of the whole body at 1e-5."""

    parser = add_cli_arguments(argparse.ArgumentParser())
    preset = config_from_args(parser.parse_args(["--model", "musicnn"])).train
    assert preset.epochs <= preset.frozen_epochs and preset.finetune_learning_rate == 1e-4  # the head alone
    tuned = config_from_args(parser.parse_args(["--model", "musicnn", "--epochs", "9", "--frozen-epochs", "8",
                                                "--finetune-learning-rate", "1e-5"])).train
    assert (tuned.epochs, tuned.frozen_epochs, tuned.finetune_learning_rate) == (9, 8, 1e-5)


def test_heads_flag_and_presets():
    """Five averaged heads for the frozen-body presets (docs/model-selection.md), one elsewhere;
    --heads overrides either, and a count below one is refused before anything runs."""

    parser = add_cli_arguments(argparse.ArgumentParser())
    heads = {model: config_from_args(parser.parse_args(["--model", model])).train.heads
             for model in ("cnn", "lstm", "musicnn", "vgg")}
    assert heads == {"cnn": 1, "lstm": 5, "musicnn": 5, "vgg": 1}
    assert config_from_args(parser.parse_args(["--model", "musicnn", "--heads", "1"])).train.heads == 1
    assert config_from_args(parser.parse_args(["--model", "vgg", "--heads", "3"])).train.heads == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "lstm", "--heads", "0"])


def test_label_smoothing_flag_and_presets():
    """musicnn's heads train on smoothed targets (docs/model-selection.md, "musicnn": chosen by cross-validation over
    the train and eval clips); --label-smoothing overrides any preset, 0 included."""

    parser = add_cli_arguments(argparse.ArgumentParser())
    smoothing = {model: config_from_args(parser.parse_args(["--model", model])).train.label_smoothing
                 for model in ("cnn", "lstm", "musicnn", "vgg")}
    assert smoothing == {"cnn": 0.0, "lstm": 0.0, "musicnn": 0.2, "vgg": 0.0}
    unsmoothed = config_from_args(parser.parse_args(["--model", "musicnn", "--label-smoothing", "0"]))
    assert unsmoothed.train.label_smoothing == 0
    assert config_from_args(parser.parse_args(["--label-smoothing", "0.2"])).train.label_smoothing == 0.2


@pytest.mark.parametrize("flag, value, advice", [
    ("--epochs", "-1", "a whole number of at least 1"),
    ("--epochs", "ten", "a whole number of at least 1"),
    ("--batch-size", "0", "a whole number of at least 1"),
    ("--heads", "0", "at least 1 (1 is a single head)"),
    ("--synthetic-tracks", "2", "at least 3 (a genre needs a train, an eval and a test track)"),
    ("--frozen-epochs", "-2", "at least 0"),
    ("--warm-start-epochs", "-1", "at least 0"),
    ("--learning-rate", "0", "a number above 0"),
    ("--learning-rate", "nan", "give a number"),
    ("--synthetic-seconds", "-30", "a number above 0"),
    ("--class-balance", "-0.5", "a number of at least 0"),
    ("--min-accuracy", "60", "a fraction from 0 to 1"),
    ("--max-bad-fraction", "1.5", "a fraction from 0 to 1"),
    ("--min-test-clips", "0", "a whole number of at least 1"),
    ("--hop-seconds", "0", "a number above 0"),
    ("--label-smoothing", "1", "a share from 0 to below 1"),
    ("--label-smoothing", "-0.1", "a share from 0 to below 1"),
    ("--tune-trials", "0", "a whole number of at least 1"),
    ("--tune-folds", "2", "at least 3 (one trains, one stops training, one is held out)"),
    ("--tune-minutes", "0", "a number above 0"),
])
def test_a_flag_out_of_range_is_refused_before_anything_runs(flag, value, advice, capsys):
    """argparse's exit 2 with one line naming the flag, the value and what to give (before, --epochs -1
    ran ingestion and Transform and then failed inside Keras)."""

    with pytest.raises(SystemExit) as refused:
        add_cli_arguments(argparse.ArgumentParser()).parse_args([flag, value])
    assert refused.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {flag}: {value!r}: give " in error and advice in error, error


def test_edge_values_are_accepted():

    args = add_cli_arguments(argparse.ArgumentParser()).parse_args(
        ["--synthetic-tracks", "3", "--min-accuracy", "0", "--max-accuracy-drop", "1", "--frozen-epochs", "0",
         "--class-balance", "0", "--max-segments-per-track", "0", "--learning-rate", "1e-5"])
    config = config_from_args(args)
    assert (config.synthetic.tracks_per_genre, config.gate.min_accuracy, config.train.learning_rate) == (3, 0, 1e-5)


def test_synthetic_tracks_shorter_than_a_segment_are_refused():

    parser = add_cli_arguments(argparse.ArgumentParser())
    with pytest.raises(SystemExit, match="--synthetic-seconds 2: a synthetic track must hold at least one segment"):
        config_from_args(parser.parse_args(["--synthetic-seconds", "2"]))
    assert config_from_args(parser.parse_args(["--synthetic-seconds", "2", "--segment-seconds", "2"]))


def test_until_stops_the_wiring_early():
    assert "Transform" not in node_ids(PipelineConfig(), until="validate")
    assert "Trainer" in node_ids(PipelineConfig(), until="train")
    assert "Evaluator" not in node_ids(PipelineConfig(), until="train")


def test_tune_puts_the_tuner_before_the_trainer_which_takes_its_best_hyperparameters():
    parser = add_cli_arguments(argparse.ArgumentParser())
    plain = create_pipeline(config_from_args(parser.parse_args([])), "/data")
    assert "Tuner" not in [node.id for node in plain.components]
    assert "hyperparameters" not in {node.id: node for node in plain.components}["Trainer"].inputs
    config = config_from_args(parser.parse_args(["--tune", "--tune-trials", "4", "--tune-oracle", "hyperband",
                                                 "--tune-minutes", "30", "--tune-folds", "5"]))
    assert config.tune == TuneConfig(enabled=True, trials=4, oracle="hyperband", max_minutes=30.0, folds=5)
    nodes = {node.id: node for node in create_pipeline(config, "/data").components}
    ids = list(nodes)
    assert ids.index("Transform") < ids.index("Tuner") < ids.index("Trainer")
    assert nodes["Trainer"].inputs["hyperparameters"] is nodes["Tuner"].outputs["best_hyperparameters"]
    import json
    tuner_config = json.loads(json.loads(nodes["Tuner"].exec_properties["custom_config"])["pipeline_config"])
    trainer_config = json.loads(json.loads(nodes["Trainer"].exec_properties["custom_config"])["pipeline_config"])
    assert tuner_config["tune"]["trials"] == 4 and "tune" not in trainer_config  # the budget keys the Tuner only


def test_transform_is_keyed_by_its_feature_code_and_the_trainer_by_all_model_code():
    import json

    from components import code_fingerprint
    from pipeline.pipeline import PREPROCESSING_FN

    nodes = {node.id: node for node in create_pipeline(PipelineConfig(), "/data", until="train").components}
    transform_code, trainer_code = (json.loads(nodes[name].exec_properties["custom_config"])["code"]
                                    for name in ("Transform", "Trainer"))
    assert transform_code == code_fingerprint.function_fingerprint(PREPROCESSING_FN)
    assert trainer_code != transform_code


def test_ingestion_is_keyed_by_its_code(tmp_path):
    """TFX keys ExampleGen's cache on the executor's class name: an edit to ingestion code must change the key."""
    import shutil

    from components import code_fingerprint
    from components.audio_example_gen import component
    from config.settings import PROJECT_ROOT

    nodes = {node.id: node for node in create_pipeline(PipelineConfig(), "/data", until="validate").components}
    assert nodes["AudioExampleGen"].exec_properties["code"] == component.ingestion_code_fingerprint()
    for package in ("audio", "components", "config", "pipeline"):
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    executor = "components.audio_example_gen.executor.Executor"
    before = code_fingerprint.function_fingerprint(executor, tmp_path)
    assert before == component.ingestion_code_fingerprint()
    with (tmp_path / "audio" / "levels.py").open("a") as f:
        f.write("\nMAX_PEAK = 8.0\n")
    assert code_fingerprint.function_fingerprint(executor, tmp_path) != before


def test_transform_leaves_statistics_to_statistics_gen():
    """Transform's own statistics would hold every transformed example in the DirectRunner's memory."""
    nodes = {node.id: node for node in create_pipeline(PipelineConfig(), "/data", until="train").components}
    assert nodes["Transform"].exec_properties["disable_statistics"] in (True, 1)
    assert "StatisticsGen" in nodes


@pytest.mark.parametrize("edited, transform_moves", [("models/cnn.py", False), ("models/features.py", True)])
def test_a_model_edit_re_keys_the_trainer_only_and_a_feature_edit_both(tmp_path, edited, transform_moves):
    import shutil

    from config.settings import PROJECT_ROOT
    from pipeline.pipeline import RUN_FN, model_code_fingerprint, transform_code_fingerprint

    for package in ("config", "models", "pipeline"):  # a copy of the code both functions import, to edit
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = transform_code_fingerprint(tmp_path), model_code_fingerprint(RUN_FN, root=tmp_path)
    with (tmp_path / edited).open("a") as f:
        f.write("\nEDITED = True\n")
    assert (transform_code_fingerprint(tmp_path) != before[0]) is transform_moves
    assert model_code_fingerprint(RUN_FN, root=tmp_path) != before[1]


@pytest.mark.parametrize("argv, bar", [
    ([], 0.95),                                   # the embedded synthetic set: stop once it is learnt
    (["--epochs", "12"], None),                   # a budget asked for is run in full
    (["--data-root", "{root}"], None),            # a user's own data keeps the preset's budget
    (["--stop-at-eval-accuracy", "0.9", "--data-root", "{root}"], 0.9),
    (["--stop-at-eval-accuracy", "0"], None),     # 0: never
])
def test_the_trainer_stops_early_on_the_synthetic_set_only_unless_told(argv, bar, tmp_path):
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args([a.replace("{root}", str(tmp_path)) for a in argv] + ["--output-dir", str(tmp_path)])
    assert config_from_args(args).train.stop_at_eval_accuracy == bar


def test_the_trainer_starts_from_the_warm_start_resolvers_model_unless_warm_start_is_off():
    """The base model comes from its own resolver, fed this run's transformed examples (an unchanged re-run then
    resolves the same base model and hits the cache); --warm-start-epochs 0 wires none. The Tuner takes none."""
    from models.warm_start import fit_key
    from pipeline.pipeline import WARM_START_RESOLVER_ID

    parser = add_cli_arguments(argparse.ArgumentParser())
    config = config_from_args(parser.parse_args(["--tune"]))
    assert config.train.warm_start_epochs == PipelineConfig().train.warm_start_epochs > 0
    for until in ("train", "push"):
        nodes = {node.id: node for node in create_pipeline(config, "/data", until=until).components}
        resolver = nodes[WARM_START_RESOLVER_ID]
        assert nodes["Trainer"].inputs["base_model"] is resolver.outputs["model"]
        assert resolver.raw_inputs["examples"] is nodes["Transform"].outputs["transformed_examples"]
        assert resolver.raw_inputs["model_blessing"].producer_component_id == CLIP_EVALUATOR_ID
        assert resolver.exec_properties["source_uri"] == {"key": fit_key(config)}  # the resolver's config
        assert "base_model" not in nodes["Tuner"].inputs
    off = config_from_args(parser.parse_args(["--warm-start-epochs", "0"]))
    nodes = {node.id: node for node in create_pipeline(off, "/data").components}
    assert WARM_START_RESOLVER_ID not in nodes and "base_model" not in nodes["Trainer"].inputs
    assert config_from_args(parser.parse_args(["--warm-start-epochs", "2"])).train.warm_start_epochs == 2


def test_kubeflow_compiles_no_warm_start_and_refuses_one_asked_for():
    """Kubeflow's compiler takes only TFX's built-in resolver strategies: warm start is off there by default, and
    the flag is refused with what to do."""
    parser = add_cli_arguments(argparse.ArgumentParser())
    assert config_from_args(parser.parse_args([]), on_this_machine=False).train.warm_start_epochs == 0
    with pytest.raises(SystemExit, match="--warm-start-epochs 3: Kubeflow Pipelines runs only TFX's built-in"):
        config_from_args(parser.parse_args(["--warm-start-epochs", "3"]), on_this_machine=False)
