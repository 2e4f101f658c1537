"""Tiny audio collections for the AudioExampleGen tests (good synthetic tracks and every kind of bad file,
from tests/testkit/audio_files.py) and AudioExampleGen's executor run as TFX runs it."""
from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path
from typing import Any

import pytest

from config.errors import UserError
from config.settings import SPLITS, PipelineConfig
from pipeline.beam_args import for_tfx
from synthetic.generator import generate
from tests.testkit.audio_files import TEST_AUDIO, copy_tracks, write_bad_and_odd_files, write_hostile_files

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
MULTI_PROCESSING = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def make_config(**split: Any) -> PipelineConfig:
    """TEST_AUDIO and the hash protocol, unless ``split`` says otherwise: the fixtures hold 2 tracks
    per genre, too few for the stratified protocol to give every split a track (ingestion would
    then stop on an empty test split), while hash draws from all 20 at once."""
    cfg = PipelineConfig(audio=TEST_AUDIO)
    cfg.split = dataclasses.replace(cfg.split, **{"protocol": "hash", **split})
    return cfg


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """10 genres x 2 tracks x 3.5 s of the project's synthetic music (3 segments of 1 s each)."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, tracks_per_genre=2, seconds=3.5, seed=0)
    return root


@pytest.fixture(scope="session")
def messy_root(tmp_path_factory, synthetic_root) -> Path:
    """The synthetic tracks plus one file of each bad or odd kind."""
    root = tmp_path_factory.mktemp("messy")
    copy_tracks(synthetic_root, root)
    write_bad_and_odd_files(root)
    (root / "rock" / "notes.txt").write_text("not an audio extension: ignored, counted\n")
    return root


@pytest.fixture(scope="session")
def hostile_root(tmp_path_factory, synthetic_root) -> Path:
    """The synthetic tracks plus one entry of each hostile kind (HOSTILE_FILES)."""
    root = tmp_path_factory.mktemp("hostile")
    copy_tracks(synthetic_root, root)
    write_hostile_files(root)
    return root


def run_executor(root: Path, config: PipelineConfig, out: Path, beam_args: list[str]):
    """Run AudioExampleGen's executor as TFX would; returns (examples, report, the UserError raised or None)."""
    from tfx.types import standard_artifacts

    from components.audio_example_gen import quarantine
    from components.audio_example_gen.component import AudioExampleGen
    from components.audio_example_gen.executor import Executor

    component = AudioExampleGen(input_base=str(root), pipeline_config_json=config.to_json())
    examples = standard_artifacts.Examples()
    examples.uri = str(out / "AudioExampleGen" / "examples" / "1")  # TFX's layout: the span pointer lands beside it
    report = quarantine.AudioQuarantine()
    report.uri = str(out / "AudioExampleGen" / "quarantine" / "1")  # TFX's layout: reports/ lands beside it
    executor = Executor(Executor.Context(beam_pipeline_args=for_tfx(beam_args), tmp_dir=str(out / "tmp")))
    error = None
    try:
        executor.Do({}, {"examples": [examples], "quarantine": [report]}, dict(component.exec_properties))
    except UserError as e:
        error = e
    return examples, report, error


def read_examples(examples_uri: str) -> dict[str, list[dict]]:
    """Every example actually written, per split, as {feature: first value}."""
    import tensorflow as tf

    result = {}
    for split in SPLITS:
        files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz")))
        assert files, f"no files written for split {split}"
        rows = []
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            rows.append({k: (v.int64_list.value[0] if v.HasField("int64_list") else v.bytes_list.value[0])
                         for k, v in feature.items()})
        result[split] = rows
    return result
