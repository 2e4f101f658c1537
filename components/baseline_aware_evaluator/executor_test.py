"""Which baseline the gate compares with: real Model and Examples artifacts on disk, real TFRecords.

The pipeline-level cases (a model switch, a smaller data set) run end to end in
tests/test_second_command_e2e.py; these pin each rule and its printed line.
"""
from __future__ import annotations

import os

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

from components import contract, model_tracks
from components.baseline_aware_evaluator.executor import comparable_baseline
from config.settings import SPLITS, PipelineConfig

CONTRACT = contract.input_contract(PipelineConfig())
TRACKS = {"train": ["blues.00000", "blues.00001", "rock.00000"], "eval": ["blues.00002"], "test": ["blues.00003"]}


def _write_split(examples: standard_artifacts.Examples, split: str, track_ids: list[str]) -> None:
    folder = artifact_utils.get_split_uri([examples], split)
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for track in track_ids:
            features = {"track_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[track.encode()])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def _examples(tmp_path, tracks: dict[str, list[str]]) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    for split in SPLITS:
        # Three segments a track, in the shuffled order a Beam writer leaves them.
        _write_split(examples, split, [t for _ in range(3) for t in reversed(tracks[split])])
    return examples


def _model(tmp_path, artifact_id: int, tracks: dict[str, list[str]] | None,
           input_contract: str = CONTRACT) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / f"model-{artifact_id}")
    model.id = artifact_id
    os.makedirs(model.uri)
    model.set_string_custom_property(contract.MODEL_PROPERTY, input_contract)
    if tracks is not None:
        model_tracks.record(model.uri, _examples(tmp_path / f"examples-{artifact_id}", tracks))
    return model


def _inputs(candidate, baseline=None) -> dict:
    inputs = {standard_component_specs.MODEL_KEY: [candidate]}
    if baseline is not None:
        inputs[standard_component_specs.BASELINE_MODEL_KEY] = [baseline]
    return inputs


def test_the_trainer_records_each_splits_distinct_tracks_beside_the_model(tmp_path):
    model = _model(tmp_path, 1, TRACKS)
    assert model_tracks.load(model.uri) == {model_tracks.IDENTITY_KEY: model_tracks.IDENTITY,
                                            **{split: sorted(TRACKS[split]) for split in SPLITS}}
    assert model_tracks.load(str(tmp_path)) is None  # a model trained before tracks were recorded


def test_a_baseline_that_names_its_tracks_by_the_earlier_rule_is_not_compared():
    candidate = {model_tracks.IDENTITY_KEY: model_tracks.IDENTITY, "train": ["blues/blues.00001"],
                 "test": ["blues/blues.00000"]}
    earlier = {"train": ["blues.00001"], "eval": [], "test": ["blues.00000"]}
    line = model_tracks.baseline_decision(candidate, earlier, "Trainer 7")
    assert "earlier rule" in line and "absolute bars only" in line


def test_a_baseline_trained_on_other_tracks_is_compared(tmp_path):
    candidate = _model(tmp_path, 2, {"train": ["jazz.00000"], "eval": ["jazz.00001"], "test": ["blues.00004"]})
    baseline = _model(tmp_path, 1, TRACKS)
    kept, line = comparable_baseline(_inputs(candidate, baseline))
    assert kept == [baseline]
    assert line.startswith("comparing with the last blessed model #1")


def test_a_baseline_that_trained_on_a_candidate_test_track_is_dropped(tmp_path):
    # Another data set: blues.00001 was the baseline's train track, blues.00002 its eval track.
    candidate = _model(tmp_path, 2, {"train": ["blues.00000"], "eval": ["blues.00003"],
                                     "test": ["blues.00001", "blues.00002", "jazz.00000"]})
    kept, line = comparable_baseline(_inputs(candidate, _model(tmp_path, 1, TRACKS)))
    assert kept == []
    assert "trained on 2 of the candidate's 3 test tracks (blues.00001, blues.00002;" in line
    assert "absolute bars only" in line


def test_a_baseline_without_recorded_tracks_is_dropped(tmp_path):
    kept, line = comparable_baseline(_inputs(_model(tmp_path, 2, TRACKS), _model(tmp_path, 1, None)))
    assert kept == []
    assert "last blessed model #1 was trained before track lists were recorded" in line


def test_another_input_format_is_dropped_before_tracks_are_read(tmp_path):
    baseline = _model(tmp_path, 1, None, input_contract=CONTRACT.replace("22050hz", "16000hz"))
    kept, line = comparable_baseline(_inputs(_model(tmp_path, 2, TRACKS), baseline))
    assert kept == [] and "not comparable on the same examples" in line and "16000 Hz" in line


def test_the_candidate_as_its_own_baseline_stays_and_no_baseline_says_so(tmp_path):
    model = _model(tmp_path, 1, None)  # a cached model re-gated: the same artifact on both inputs
    assert comparable_baseline(_inputs(model, model))[0] == [model]
    assert comparable_baseline(_inputs(model)) == ([], "no blessed model yet: the gate uses the absolute bars")


@pytest.mark.parametrize("split", SPLITS)
def test_an_empty_split_records_no_tracks(tmp_path, split):
    tracks = {**TRACKS, split: []}
    assert model_tracks.load(_model(tmp_path, 1, tracks).uri)[split] == []
