"""The local TrackedTrainer executor around a stand-in ``run_fn``: with a base model the tracks are recorded before
training (``run_fn`` checks the base model against them), and how the model began is published on the artifact."""
from __future__ import annotations

import json
import os

import pytest
import tf_keras as keras
from tfx.components.trainer import fn_args_utils
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs as keys
from tfx.utils import json_utils, proto_utils

from components import model_tracks
from components.tracked_trainer import base_model
from components.tracked_trainer.executor import Executor
from config.settings import TRAINING_SECTIONS, PipelineConfig
from models import warm_start
from tests.testkit.training_inputs import examples_of_tracks

CONFIG = PipelineConfig()
TRACKS = {"train": ["blues/a", "rock/b"], "eval": ["blues/c"], "test": ["rock/d"]}
SEEN_BEFORE_TRAINING = "tracks_seen_before_training.json"


def train_a_stand_in(fn_args: fn_args_utils.FnArgs) -> None:
    """What run_fn leaves that the executor reads: an export, and warm_start's files (a warm start from the base)."""
    model_dir = os.path.dirname(fn_args.serving_model_dir)
    with open(os.path.join(fn_args.model_run_dir, SEEN_BEFORE_TRAINING), "w") as f:
        json.dump(model_tracks.load(model_dir), f)
    os.makedirs(fn_args.serving_model_dir)
    start = (warm_start.Start(epochs=2, base=os.path.dirname(fn_args.base_model)) if fn_args.base_model else
             warm_start.Start(reason="no champion yet"))
    tiny = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    warm_start.save(tiny, CONFIG, start, model_dir)


@pytest.mark.parametrize("with_base", [True, False])
def test_the_model_artifact_says_how_training_began(tmp_path, with_base):
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    os.makedirs(model.uri), os.makedirs(model_run.uri)
    inputs = {keys.EXAMPLES_KEY: [examples_of_tracks(tmp_path / "examples", TRACKS)]}
    if with_base:
        base = standard_artifacts.Model()
        base.uri, base.id = str(tmp_path / "champion"), 12
        inputs[keys.BASE_MODEL_KEY] = [base]
    exec_properties = {
        keys.RUN_FN_KEY: f"{__name__}.train_a_stand_in",
        keys.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
        keys.EVAL_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
        keys.CUSTOM_CONFIG_KEY: json_utils.dumps({"pipeline_config": CONFIG.to_json(TRAINING_SECTIONS)})}

    Executor().Do(inputs, {"model": [model], "model_run": [model_run]}, exec_properties)

    recorded = {model_tracks.IDENTITY_KEY: model_tracks.IDENTITY, **TRACKS}
    seen = json.loads((tmp_path / "model_run" / SEEN_BEFORE_TRAINING).read_text())
    assert seen == (recorded if with_base else None)  # without a base model, recorded once, after training
    assert model_tracks.load(model.uri) == recorded
    assert model.get_string_custom_property(base_model.KEY_PROPERTY) == warm_start.fit_key(CONFIG)
    assert model.get_string_custom_property(warm_start.PROPERTY) == (
        "warm start from the champion (model 12): up to 2 epochs" if with_base else "cold start: no champion yet")
