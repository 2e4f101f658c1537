"""AudioExampleGen's driver: its input fingerprint survives broken links and still keys the cache."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.components.example_gen import driver as tfx_driver
from tfx.components.example_gen import utils
from tfx.dsl.io import filesystem
from tfx.orchestration import metadata

from components.audio_example_gen.component import AudioExampleGen
from components.audio_example_gen.conftest import IN_MEMORY, make_config
from components.audio_example_gen.driver import AudioDriver
from pipeline.beam_args import for_tfx
from tests.testkit.audio_files import copy_tracks, tone, wav_bytes


def with_bad_links(root: Path) -> Path:
    (root / "rock" / "gone.wav").symlink_to(root / "rock" / "no-such-file.wav")
    (root / "rock" / "loop.wav").symlink_to("loop.wav")
    return root


def exec_properties(root: Path) -> dict:
    return dict(AudioExampleGen(input_base=str(root), pipeline_config_json=make_config().to_json()).exec_properties)


def resolve(driver_class, root: Path) -> str:
    """The driver's exec-property resolution as TFX's launcher calls it; returns the fingerprint.
    No MLMD handle is needed for this step (the driver only stores it)."""
    resolved = driver_class(None).resolve_exec_properties(exec_properties(root), None, None)
    return resolved[utils.FINGERPRINT_PROPERTY_NAME]


@pytest.fixture()
def root(synthetic_root, tmp_path) -> Path:
    target = tmp_path / "audio"
    copy_tracks(synthetic_root, target)
    return with_bad_links(target)


def test_tfx_driver_crashes_on_a_dangling_link_and_ours_does_not(root):
    # The failures TFX's own driver has, before any quarantine logic: NotFoundError for the dangling
    # link, "Too many levels of symbolic links" for the loop (whichever the glob lists first).
    with pytest.raises((filesystem.NotFoundError, tf.errors.UnknownError)):
        resolve(tfx_driver.FileBasedDriver, root)
    fingerprint = resolve(AudioDriver, root)
    assert "num_files:22," in fingerprint and "unstatable:2," in fingerprint


def test_fingerprint_changes_with_a_file_and_only_then(root):
    before = resolve(AudioDriver, root)
    assert resolve(AudioDriver, root) == before
    track = root / "blues" / "blues.00000.wav"
    stat = track.stat()
    track.write_bytes(wav_bytes(tone(2.0)))  # another size
    os.utime(track, (stat.st_atime, stat.st_mtime + 10))  # and a later second: what TFX's stat sees
    changed = resolve(AudioDriver, root)
    assert changed != before
    # Moving a file to another genre folder changes its label but not size or mtime: still a change.
    shutil.move(root / "jazz" / "jazz.00000.wav", root / "rock" / "jazz.00000.wav")
    assert resolve(AudioDriver, root) not in (before, changed)


def test_a_changed_file_reruns_ingestion_and_an_unchanged_input_is_cached(root, tmp_path):
    """Three LocalDagRunner runs with caching (real MLMD on SQLite), dangling link and loop present."""
    metadata_path = str(tmp_path / "metadata.sqlite")

    def run() -> None:
        config = make_config(max_bad_fraction=0.5)  # the two links are 2 of 22 files
        component = AudioExampleGen(input_base=str(root), pipeline_config_json=config.to_json())
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="driver-test", pipeline_root=str(tmp_path / "pipeline_root"), components=[component],
            enable_cache=True, beam_pipeline_args=for_tfx(IN_MEMORY),
            metadata_connection_config=metadata.sqlite_metadata_connection_config(metadata_path)))

    def states() -> list[int]:
        store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))
        return [e.last_known_state for e in sorted(store.get_executions(), key=lambda e: e.id)]

    state = metadata_store_pb2.Execution
    run()
    run()
    assert states() == [state.COMPLETE, state.CACHED]
    track = root / "blues" / "blues.00000.wav"
    stat = track.stat()
    track.write_bytes(wav_bytes(tone(2.5)))
    os.utime(track, (stat.st_atime, stat.st_mtime + 10))
    run()
    assert states() == [state.COMPLETE, state.CACHED, state.COMPLETE]
