"""A failed ingestion keeps its evidence: through TFX's LocalDagRunner (real MLMD on SQLite, real Beam)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tfx import v1 as tfx
from tfx.orchestration import metadata

from components.audio_example_gen import checks, quarantine
from components.audio_example_gen.component import AudioExampleGen
from components.audio_example_gen.conftest import IN_MEMORY, make_config
from config.errors import find_user_error
from pipeline.beam_args import for_tfx
from tests.testkit.audio_files import BAD_AND_ODD_FILES

BAD = sorted(rel for rel, _, fate in BAD_AND_ODD_FILES.values() if fate != "ingested")


def test_too_many_bad_files_through_the_runner_names_a_report_that_exists(messy_root, tmp_path):
    pipeline_root = tmp_path / "pipeline_root"
    component = AudioExampleGen(input_base=str(messy_root),
                                pipeline_config_json=make_config(max_bad_fraction=0.05).to_json())
    failure = None
    try:
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name="report-test", pipeline_root=str(pipeline_root), components=[component],
            enable_cache=False, beam_pipeline_args=for_tfx(IN_MEMORY),
            metadata_connection_config=metadata.sqlite_metadata_connection_config(str(tmp_path / "m.sqlite"))))
    except Exception as error:  # noqa: BLE001 - the runner may wrap the executor's error
        failure = error
    error = find_user_error(failure) if failure is not None else None
    assert isinstance(error, checks.TooManyBadFiles), failure
    named = re.search(r"every file and reason in (\S+?\.jsonl)", error.paragraph()).group(1)
    assert Path(named).is_file(), named
    assert named.startswith(str(pipeline_root / "AudioExampleGen" / "reports"))
    assert sorted(json.loads(line)["path"] for line in Path(named).read_text().splitlines()) == BAD
    summary = json.loads((Path(named).parent / quarantine.SUMMARY_FILE).read_text())
    assert summary["files"]["quarantined"] == len(BAD)
    # Why the copy: the runner removed the failed execution's own quarantine artifact.
    artifacts = list((pipeline_root / "AudioExampleGen" / "quarantine").glob(f"*/{quarantine.QUARANTINE_FILE}"))
    assert artifacts == []
