"""AudioExampleGen executor: audio files -> train/eval/test tf.Examples + a quarantine report.

The launcher plans each file's fate (plan.py) and writes the plan as task files, so the Beam graph holds no per-file
work; Beam decodes and segments them in parallel (ingest.py). The report goes into the artifact and a kept folder
(:func:`kept_report_dir`), then the gates of checks.py run."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from typing import Any, Optional

import apache_beam as beam
from absl import logging
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, utils, write_split
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from audio import filecheck
from audio.discovery import discover
from components import small_inputs
from components.audio_example_gen import checks, ingest, progress, quarantine, spans
from components.audio_example_gen.plan import Plan, make_plan
from config.settings import SPLITS, AudioConfig, PipelineConfig

PIPELINE_CONFIG_KEY = "pipeline_config_json"
QUARANTINE_KEY = "quarantine"
_TASKS_TMP = ".file_tasks"
_DECODED_FILE = "decoded.jsonl"
REPORTS_DIR = "reports"
TASKS_PER_SHARD = 1000  # task files of ~0.3 MB: many shards for many workers, few for a small collection
MAX_TASK_SHARDS = 256


def write_task_files(tasks: list[ingest.FileTask], folder: str) -> str:
    """The plan as JSON-lines shards under ``folder``; returns the glob pattern that reads them back."""
    fileio.makedirs(folder)
    shards = max(1, min(MAX_TASK_SHARDS, -(-len(tasks) // TASKS_PER_SHARD)))
    for shard in range(shards):
        with fileio.open(os.path.join(folder, f"tasks-{shard:05d}-of-{shards:05d}.jsonl"), "w") as f:
            f.write("".join(json.dumps(dataclasses.asdict(t)) + "\n" for t in tasks[shard::shards]))
    return os.path.join(folder, "tasks-*.jsonl")


def _task(line: str) -> ingest.FileTask:
    return ingest.FileTask(**json.loads(line))


@beam.ptransform_fn
def IngestTaskFiles(pipeline: beam.Pipeline, pattern: str, audio: AudioConfig,  # noqa: N802 - Beam's naming
                    progress_dir: Optional[str] = None) -> dict[str, beam.PCollection]:
    """Task files the workers read (not the graph), reshuffled -> ``{split: examples, "files": records}``."""
    outputs = (pipeline
               | "ReadFileTasks" >> beam.io.ReadFromText(pattern)
               | "ParseFileTasks" >> beam.Map(_task)
               | "SpreadFileTasks" >> beam.Reshuffle()
               | "DecodeToExamples" >> beam.ParDo(ingest.DecodeToExamples(audio, progress_dir)).with_outputs(
                   ingest.FILES, *SPLITS))
    return {name: outputs[name] for name in (*SPLITS, ingest.FILES)}


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """FileBasedExampleGen executor for GTZAN-style audio folders."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """IngestTaskFiles: task files -> ``{split: serialized tf.Examples, "files": file records}``."""
        return IngestTaskFiles

    def _plan(self, exec_properties: dict[str, Any],
              base: Optional[spans.Chain]) -> tuple[PipelineConfig, Plan, list[str]]:
        """Each discovered file's fate (``base``: the chain this run adds a span to), and the non-audio files seen;
        an unsplittable genre raises here, before any decoding, for runs without preflight (Kubeflow)."""
        config = PipelineConfig.from_json(exec_properties[PIPELINE_CONFIG_KEY])
        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        names = utils.generate_output_split_names(input_config, output_config)
        if tuple(names) != SPLITS:
            raise ValueError(f"AudioExampleGen writes the splits {', '.join(SPLITS)}; its output_config names "
                             f"{names}. Splits are chosen by split.protocol, not by output_config.")
        root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        found = discover(root, input_config.splits[0].pattern, config.genres, config.labels)
        earlier = {r["path"]: r for r in spans.read_index(base.uris[base.span])} if base else None
        plan = make_plan(found, config.split, config.genres, max_seconds=config.audio.max_clip_seconds,
                         where=f"AudioExampleGen, {root}", earlier=earlier)
        tasks = plan.tasks
        counts = {s: sum(t.status == s for t in tasks) for s in (ingest.PENDING, ingest.QUARANTINED, ingest.EXCLUDED)}
        logging.info("AudioExampleGen: %d entries under %s (protocol %s, grouped by %s): %d to decode, %d "
                     "quarantined before decoding, %d excluded (%d without an audio extension), %d unchanged since "
                     "the last ingestion.", len(tasks) + len(plan.carried), root, config.split.protocol, plan.group_by,
                     counts[ingest.PENDING], counts[ingest.QUARANTINED], counts[ingest.EXCLUDED],
                     len(found.other_files), len(plan.carried))
        return config, plan, found.other_files

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        written = artifact_utils.get_single_instance(examples)
        root = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        key = spans.ingestion_key(exec_properties[PIPELINE_CONFIG_KEY], exec_properties.get("code") or "", root)
        component_dir = os.path.dirname(os.path.dirname(written.uri.rstrip("/")))
        latest = spans.latest_chain(component_dir)
        rebuild = spans.rebuild_reason(latest, key)
        base = None if rebuild else latest
        config, plan, other_files = self._plan(exec_properties, base)
        span = spans.last_span(component_dir) + 1
        chain = spans.Chain(span, {**(base.uris if base else {}), span: written.uri}, key,
                            base.retired if base else {}).retiring(plan.retired)
        counts = plan.counts()
        logging.info("AudioExampleGen: span %d, %s.", span, f"a full ingestion: {rebuild}" if rebuild else
                     f"built on span {base.span}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        written.split_names = artifact_utils.encode_split_names([*SPLITS, spans.RETIRED])
        written.span = span
        # What ingest.WriteTFRecords writes: the component fixes both formats, so no exec property can differ.
        examples_utils.set_payload_format(written, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(written,
                                       write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))
        report = artifact_utils.get_single_instance(output_dict[QUARANTINE_KEY])
        tasks_dir = os.path.join(report.uri, _TASKS_TMP)
        pattern = write_task_files(plan.tasks, tasks_dir)
        total = len(plan.tasks)
        plan.tasks = []  # in the task files now: the launcher holds no per-file list while Beam runs
        progress_dir = os.path.join(report.uri, progress.FOLDER) if filecheck.is_local(report.uri) else None
        decoded_jsonl = os.path.join(report.uri, _DECODED_FILE)
        retiring = spans.retired_spans(plan.retired)

        read = sum(f["size"] or 0 for f in plan.facts.values()) + small_inputs.split_bytes(
            [chain.uris[s] for s in retiring], ["train"])
        self._beam_pipeline_args = small_inputs.beam_args_for(self._beam_pipeline_args, read)
        started = time.time()
        reporter = progress.Reporter(progress_dir, total) if progress_dir else contextlib.nullcontext()
        with reporter, self._make_beam_pipeline() as pipeline:
            outputs = pipeline | "IngestAudio" >> self.GetInputSourceToExamplePTransform()(
                pattern, config.audio, progress_dir)
            outputs[spans.RETIRED] = pipeline | "Tombstones" >> Tombstones(
                {chain.uris[s]: ids for s, ids in retiring.items()})
            for split in (*SPLITS, spans.RETIRED):
                # TFX's write_split.WriteSplit (same files) without its MaybeSerialize DoFn, whose module imports
                # TensorFlow into every worker, and its example-level Reshuffle, which pushes every byte through the
                # runner once more; a track's segments stay consecutive, for the trainer's shuffle buffer.
                _ = outputs[split] | f"WriteSplit[{split}]" >> ingest.WriteTFRecords(
                    os.path.join(artifact_utils.get_split_uri(examples, split), write_split.DEFAULT_FILE_NAME))
            _ = (outputs[ingest.FILES]
                 | "RecordsToJson" >> beam.Map(json.dumps, sort_keys=True)
                 | "WriteFileRecords" >> beam.io.WriteToText(decoded_jsonl, num_shards=1, shard_name_template=""))
        wall = time.time() - started
        fileio.rmtree(tasks_dir)

        files_jsonl = os.path.join(report.uri, quarantine.FILES_FILE)
        decoded_seconds, segments = merge_index(decoded_jsonl, plan, span, files_jsonl)
        summary = quarantine.summarize(
            quarantine.read_records(files_jsonl), wall, config.genres, data_root=root,
            split_protocol=config.split.protocol, split_dir=config.split.split_dir, group_by=plan.group_by,
            group_fallbacks=plan.group_fallbacks, group_placeholders=plan.group_placeholders,
            split_salt=config.split.salt, sample_rate=config.audio.sample_rate,
            segment_samples=config.audio.segment_samples, hop_samples=config.audio.hop_samples,
            max_bad_fraction=config.split.max_bad_fraction, max_clip_seconds=config.audio.max_clip_seconds,
            max_segments_per_track=config.audio.max_segments_per_track, ignored_non_audio_files=other_files,
            span={"span": span, "built_on": base.span if base else None, "rebuild_reason": rebuild,
                  "spans": sorted(chain.uris), **counts, "decoded": len(plan.facts), "segments": segments,
                  "retired_train_tracks": sum(map(len, retiring.values()))})
        if plan.carried:  # throughput of what this run decoded, not of the tracks it carried over
            summary["audio_seconds_per_wall_second"] = round(decoded_seconds / wall, 1) if wall > 0 else None
        summary["warnings"] = checks.warnings(summary, config.genres, config.audio.max_segments_per_track)
        quarantine.write_report(report.uri, files_jsonl, summary)
        kept = kept_report_dir(report.uri, getattr(self._context, "pipeline_run_id", None))
        quarantine.write_report(kept, files_jsonl, summary)
        report.set_int_custom_property("num_quarantined", summary["files"][ingest.QUARANTINED])
        report.set_int_custom_property("num_ingested", summary["files"][ingest.INGESTED])
        report.set_int_custom_property("num_decoded", len(plan.facts))
        _log_summary(summary, kept)

        checks.check_bad_fraction(summary, config.split.max_bad_fraction, kept)
        checks.check_splits(summary, config.split.ratios, config.split.protocol, kept)
        fileio.copy(files_jsonl, os.path.join(written.uri, spans.INDEX_FILE), overwrite=True)
        spans.write_chain(written.uri, chain)
        spans.point_to(component_dir, written.uri, span)


@beam.ptransform_fn
def Tombstones(pipeline: beam.Pipeline, retiring: dict[str, set[str]]) -> beam.PCollection:  # noqa: N802
    """The train records of the retired tracks (examples URI -> track ids), marked for Transform to subtract."""
    marked = [pipeline | f"ReadRetired[{i}]" >> beam.io.ReadFromTFRecord(
                  os.path.join(uri, "Split-train", "*"), compression_type=beam.io.filesystem.CompressionTypes.GZIP)
              | f"KeepRetired[{i}]" >> beam.Filter(lambda record, ids=ids: spans.track_id_of(record) in ids)
              for i, (uri, ids) in enumerate(sorted(retiring.items()))]
    if not marked:  # an empty Flatten: Dask's runner override of Flatten cannot take one
        return pipeline | "NoTombstones" >> beam.Create([])
    return marked | "AllRetired" >> beam.Flatten() | "MarkRetired" >> beam.Map(spans.tombstone)


def merge_index(decoded_jsonl: str, plan: Plan, span: int, files_jsonl: str) -> tuple[float, dict[str, int]]:
    """files.jsonl: the records this run decoded, with their span and what the next run compares, then those it
    carried over; returns the seconds of audio decoded and the segments written per split (views included)."""
    seconds, written = 0.0, dict.fromkeys(SPLITS, 0)
    with fileio.open(files_jsonl, "w") as out:
        for record in quarantine.read_records(decoded_jsonl):
            if record["path"] in plan.facts:
                record.update(plan.facts[record["path"]], span=span)
                seconds += record.get("decoded_seconds", record["seconds"])
                if record["status"] == ingest.INGESTED:
                    written[record["split"]] += record["segments"] + record.get("view_segments", 0)
            out.write(json.dumps(record, sort_keys=True) + "\n")
        for record in plan.carried:
            out.write(json.dumps(record, sort_keys=True) + "\n")
    fileio.remove(decoded_jsonl)
    return seconds, written


def kept_report_dir(report_uri: str, run_id: Optional[str]) -> str:
    """``<component folder>/reports/<run id>/``: TFX deletes a failed execution's artifacts, not this folder."""
    component_dir = os.path.dirname(os.path.dirname(report_uri.rstrip("/")))
    return os.path.join(component_dir, REPORTS_DIR, run_id or os.path.basename(report_uri.rstrip("/")))


def _log_summary(summary: dict[str, Any], report_uri: str) -> None:
    splits = ", ".join(f"{s} {v['tracks']} tracks / {v['segments']} segments" for s, v in summary["splits"].items())
    logging.info("AudioExampleGen: %s. %.0f s of audio in %.1f s wall (%sx real time). Report: %s",
                 splits, summary["audio_seconds"], summary["wall_seconds"],
                 summary["audio_seconds_per_wall_second"], report_uri)
    logging.info("AudioExampleGen: tracks/segments per genre and split:\n%s", quarantine.format_table(summary))
    for reason, count in summary["excluded_counts"].items():
        logging.info("AudioExampleGen: %d files excluded (%s).", count, reason)
    bad = summary["files"][ingest.QUARANTINED]
    if bad:
        shown = summary["quarantined"]
        logging.warning("AudioExampleGen: %d files quarantined (%s)%s:\n%s", bad,
                        ", ".join(f"{r} {n}" for r, n in summary["quarantine_reasons"].items()),
                        f", the first {len(shown)} (all in {quarantine.QUARANTINE_FILE})" if len(shown) < bad else "",
                        "\n".join(f"  {b['path']}: {b['reason']} ({b['detail']})" for b in shown))
    for warning in summary["warnings"]:
        logging.warning("AudioExampleGen: %s", warning)
