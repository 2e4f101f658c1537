"""The batch tagger and Beam on a real Dask cluster.

A real ``distributed`` cluster is started by the test on 127.0.0.1 (a scheduler and two
worker processes, free ports) and torn down after. Real Beam runners throughout: the
DirectRunner, Beam's own DaskRunner and the project's fixed one (pipeline/dask_runner.py).
The model is tests/testkit/serving.py's stand-in SavedModel: it has the pushed model's
``serving_default`` signature (waveform + sample_rate in; scores, genre, segment_scores,
genres out) and classifies by loudness in a few milliseconds, which is what a runner
comparison needs. The gRPC comparison uses serving/stand_in_server.py, the TF Serving test
double (TF Serving itself cannot be installed here).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import types
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import soundfile as sf
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import beam_args as runners
from pipeline.beam_args import DASK_RUNNER as FIXED_DASK
from serving.client import GenreClient
from tagging import outputs
from tagging import pipeline as tag_pipeline
from tagging.model import latest_version
from tests.testkit.serving import build_stand_in_model, serving_endpoint, stand_in_clip

RATE = 22050
# Beam's own Dask runner, which the project's corrects.
STOCK_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
# name -> expected quarantine reason (ingestion's reasons, components/audio_example_gen)
HOSTILE = {"rock/notes.wav": "not_audio", "rock/empty.wav": "empty", "jazz/blip.wav": "too_short",
           "jazz/pipe.wav": "special_file"}
GENRE_LEVELS = ("blues", "country", "hiphop", "metal", "reggae", "rock")


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    # Dask spawns its worker processes, and multiprocessing's spawn runs the parent's __main__ file
    # in each. After a Streamlit AppTest in this process (tests/test_app_page.py) __main__ is
    # app/page.py, which hides the TensorFlow runtime, so the workers could not load the model.
    # A blank __main__ runs nothing, whatever ran before.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            yield cluster.scheduler_address


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp("serving") / "genre"
    build_stand_in_model(base, version=1)
    return str(base)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """Clips the stand-in labels as six different genres (two each, one a FLAC) plus hostile files."""
    root = tmp_path_factory.mktemp("library")
    for i, genre in enumerate(GENRE_LEVELS):
        (root / genre).mkdir(exist_ok=True)
        clip = stand_in_clip(genre, seconds=7.0 + i % 3, sample_rate=RATE)
        sf.write(root / genre / f"{genre}.a.wav", clip, RATE, subtype="PCM_16")
        sf.write(root / genre / f"{genre}.b.flac", clip[: RATE * 4], RATE, subtype="PCM_16")
    for rel in HOSTILE:
        (root / rel).parent.mkdir(exist_ok=True)
    (root / "rock/notes.wav").write_text("these are liner notes, not audio\n")
    (root / "rock/empty.wav").write_bytes(b"")
    sf.write(root / "jazz/blip.wav", stand_in_clip("jazz", seconds=0.5), RATE, subtype="PCM_16")
    os.mkfifo(root / "jazz/pipe.wav")  # opening it would block forever
    (root / "README.txt").write_text("not an audio extension: ignored\n")
    return root


def run_tagger(library: Path, model_dir: str, out: Path, args: list[str]) -> tuple[dict, list[dict], list[dict], Path]:
    summary = tag_pipeline.tag(str(library), str(out), latest_version(model_dir), beam_args=args, batch_size=3)
    rows = [json.loads(line) for line in (out / outputs.JSONL_FILE).read_text().splitlines()]
    bad = [json.loads(line) for line in (out / outputs.QUARANTINE_FILE).read_text().splitlines()]
    return summary, rows, bad, out


@pytest.fixture(scope="module")
def direct_run(library, model_dir, tmp_path_factory):
    return run_tagger(library, model_dir, tmp_path_factory.mktemp("direct"), IN_MEMORY)


def assert_same_rows(rows: list[dict], reference: list[dict]) -> None:
    assert [r["path"] for r in rows] == [r["path"] for r in reference]
    for row, ref in zip(rows, reference):
        assert row["genre"] == ref["genre"], row["path"]
        assert row["segments"] == ref["segments"] and row["seconds"] == ref["seconds"]
        assert [t["genre"] for t in row["top3"]] == [t["genre"] for t in ref["top3"]]
        np.testing.assert_allclose([row["scores"][g] for g in ref["scores"]], list(ref["scores"].values()), atol=1e-5)


@pytest.mark.parametrize("runner", [FIXED_DASK, STOCK_DASK_RUNNER])
def test_tagger_rows_on_dask_equal_the_direct_runner(runner, library, model_dir, dask_address, direct_run,
                                                     tmp_path):
    summary, rows, bad, _ = run_tagger(library, model_dir, tmp_path, runners.dask_args(dask_address, runner))
    _, ref_rows, ref_bad, _ = direct_run
    assert len(ref_rows) == 2 * len(GENRE_LEVELS)
    assert_same_rows(rows, ref_rows)
    assert bad == ref_bad
    assert summary["runner"] == runner and summary["files"] == {"listed": 16, "tagged": 12, "quarantined": 4}
    assert not glob.glob(str(tmp_path / ".shards-*")) and not glob.glob(str(tmp_path / "beam-temp*"))
    # A worker loads the model once, keeping it for its later bundles and jobs (the two runners'
    # runs share this cluster; without the cache each job loaded it again).
    import distributed
    with distributed.Client(dask_address) as client:
        loads = client.run(lambda: dict(__import__("tagging.model", fromlist=["loads"]).loads))
    assert loads and all(n == 1 for per_worker in loads.values() for n in per_worker.values()), loads


def test_hostile_files_are_quarantined_and_every_other_file_tagged(direct_run, library):
    summary, rows, bad, _ = direct_run
    assert {b["path"]: b["reason"] for b in bad} == HOSTILE
    assert all(b["detail"] for b in bad)
    audio = {str(p.relative_to(library)) for p in library.rglob("*.*") if p.suffix in (".wav", ".flac")}
    assert {r["path"] for r in rows} == audio - set(HOSTILE)
    # The stand-in labels a clip by its loudness: each clip gets the genre it was made for.
    assert {r["path"]: r["genre"] for r in rows} == {r["path"]: r["path"].split("/")[0] for r in rows}
    assert summary["genres"]["metal"] == 2 and summary["genres"]["jazz"] == 0
    assert summary["ignored_files"] == ["README.txt"]
    assert summary["audio_seconds"] == pytest.approx(sum(r["seconds"] for r in rows))


def test_csv_parquet_and_json_lines_hold_the_same_rows(direct_run):
    import pyarrow.parquet as pq

    _, rows, _, out = direct_run
    csv_lines = (out / outputs.CSV_FILE).read_text().splitlines()
    assert csv_lines[0].split(",") == outputs.CSV_COLUMNS and len(csv_lines) == len(rows) + 1
    table = pq.read_table(out / outputs.PARQUET_FILE).to_pylist()
    assert [t["path"] for t in table] == [r["path"] for r in rows]
    assert [t["top1_genre"] for t in table] == [r["genre"] for r in rows]
    assert all(t["model_version"] == "1" for t in table)


def test_tagger_genres_equal_the_grpc_clients(direct_run, library, model_dir):
    _, rows, _, _ = direct_run
    with serving_endpoint(model_dir) as host, GenreClient(host) as client:
        for row in rows:
            answer = client.predict_file(library / row["path"])
            assert answer.genre == row["genre"], row["path"]
            np.testing.assert_allclose(answer.scores, [row["scores"][g] for g in answer.genres], atol=1e-5)
            assert answer.segment_scores.shape[0] == row["segments"]


# ----- AudioExampleGen and plain Beam on Dask ---------------------------------------------------

def split_digests(examples_uri: str) -> dict[str, tuple[int, str]]:
    """Per split: number of examples and a digest of the sorted serialised examples."""
    import tensorflow as tf

    result = {}
    for split in ("train", "eval", "test"):
        files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz")))
        records = sorted(r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))
        result[split] = (len(records), hashlib.sha256(b"".join(records)).hexdigest())
    return result


def test_audio_example_gen_on_dask_writes_the_direct_runners_examples(dask_address, tmp_path):
    from components.audio_example_gen.conftest import make_config, run_executor
    from synthetic.generator import generate

    root = tmp_path / "data"
    generate(root, tracks_per_genre=3, seconds=3.5, seed=0)
    config = make_config(protocol="hash")
    direct, direct_report, _ = run_executor(root, config, tmp_path / "direct", IN_MEMORY)
    dask, dask_report, _ = run_executor(root, config, tmp_path / "dask", runners.dask_args(dask_address))
    expected = split_digests(direct.uri)
    assert sum(n for n, _ in expected.values()) == 30 * 3  # 30 tracks of three 1-s segments
    assert split_digests(dask.uri) == expected
    records = [sorted(Path(r.uri, "files.jsonl").read_text().splitlines()) for r in (direct_report, dask_report)]
    # One record per entry of the root: 30 tracks, MANIFEST.json and .generating.json (both excluded).
    assert len(records[1]) == 32 and {json.loads(x)["path"] for x in records[1]} == {
        json.loads(x)["path"] for x in records[0]}
    assert not glob.glob(str(tmp_path / "dask" / "**" / "beam-temp*"), recursive=True)


class _Split(beam.DoFn):
    def process(self, x):
        yield beam.pvalue.TaggedOutput("even" if x % 2 == 0 else "odd", x)


class _CountInFinishBundle(beam.DoFn):
    def start_bundle(self):
        self.n = 0

    def process(self, x):
        self.n += 1

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue
        yield WindowedValue(self.n, 0, (GlobalWindow(),))


def test_fixed_dask_runner_runs_every_branch_tagged_outputs_sinks_and_sources(dask_address, tmp_path):
    """The four failures of Beam's DaskRunner (pipeline/dask_runner.py), each checked on the fixed one."""
    options = PipelineOptions(runners.dask_args(dask_address) + ["--dask_npartitions=4"])
    with beam.Pipeline(options=options) as p:
        numbers = p | beam.Create(list(range(100)))
        split = numbers | beam.ParDo(_Split()).with_outputs("even", "odd")
        _ = split.even | "Even" >> beam.Map(str) | "WriteEven" >> beam.io.WriteToText(str(tmp_path / "even"))
        _ = split.odd | "Odd" >> beam.Map(str) | "WriteOdd" >> beam.io.WriteToText(str(tmp_path / "odd"))
        _ = (numbers | beam.ParDo(_CountInFinishBundle()) | beam.CombineGlobally(sum)
             | "Total" >> beam.Map(str) | "WriteTotal" >> beam.io.WriteToText(str(tmp_path / "total")))
    read = lambda prefix: sorted(int(x) for f in glob.glob(str(tmp_path / f"{prefix}-*"))  # noqa: E731
                                 for x in Path(f).read_text().split())
    assert read("even") == list(range(0, 100, 2)) and read("odd") == list(range(1, 100, 2))
    assert read("total") == [100]
    assert not glob.glob(str(tmp_path / "beam-temp*"))
    with beam.Pipeline(options=options) as p:  # Beam's file source (beam.io.Read) on Dask
        _ = (p | beam.io.ReadFromText(str(tmp_path / "even-*")) | beam.Map(int) | beam.CombineGlobally(sum)
             | beam.Map(str) | beam.io.WriteToText(str(tmp_path / "sum")))
    assert read("sum") == [sum(range(0, 100, 2))]


def test_a_rerun_on_dask_decodes_only_the_new_file(library, model_dir, dask_address, tmp_path):
    """The comparison with the earlier results happens before the Beam graph: Dask's workers get only new files."""
    import shutil
    music = tmp_path / "music"
    for rel in ("blues/blues.a.wav", "metal/metal.b.flac"):
        (music / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library / rel, music / rel)
    first, _, _, out = run_tagger(music, model_dir, tmp_path / "out", IN_MEMORY)
    shutil.copy2(library / "rock/rock.a.wav", music / "rock.wav")
    summary, rows, _, _ = run_tagger(music, model_dir, out, runners.dask_args(dask_address))
    assert first["changes"]["inferred"] == 2
    assert summary["changes"] == {
        "new": 1, "changed": 0, "moved": 0, "removed": 0, "unchanged": 2, "quarantined": 0, "inferred": 1}
    assert {r["path"]: r["genre"] for r in rows} == {"blues/blues.a.wav": "blues", "metal/metal.b.flac": "metal",
                                                    "rock.wav": "rock"}
