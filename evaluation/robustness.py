"""The same answer however the music reaches the model? Each held-out clip sent as it is and
through each channel of evaluation/channels.py (level, codec, sample rate, a device in a room).

    python -m evaluation.robustness --model-dir DIR --family NAME [--clips-from RUN] [--limit N]
                                                                           (make robustness)

Each clip is decoded as the client decodes a file and sent to ``serving_default``, the signature TF Serving
runs, called in this process (no gRPC: the same answers at a fraction of the cost). A run replaces its own row
(per family, or per ``--variant``) of the shared ``robustness`` table in BENCHMARKS.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import glob  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from evaluation import channels  # noqa: E402
from bench.real_data import DEFAULT_DATA_ROOT, DEFAULT_SPLIT_DIR  # noqa: E402
from bench.report import (add_no_write, cpu_description, put_row, read_section, run_header, run_stamp,  # noqa: E402
                          table_rows, timed, write_section)
from config.settings import GENRES, MODEL_TYPES, SPLIT_PROTOCOLS, PipelineConfig  # noqa: E402
from serving.layout import pushed_versions  # noqa: E402

ORIGINAL = "the original"
REFUSED = "refused"
LIST_PROTOCOLS = ("fault-filtered", "fault-filtered-final", "lists-trainval")  # the protocols that read --split-dir
COMMAND = "make robustness"
NEAR_TIE = 0.05  # a clip whose two highest genre scores differ by less than this is a near tie
Predict = Callable[[np.ndarray, int], tuple[str, Optional[float]]]  # (answer, top-two score margin or None)
SECTION = "robustness"
TITLE = "Robustness to level, codec, sample rate and device"
# The shared table's channels: (column, the start of the channel's name in evaluation/channels.py)
SUMMARY_CHANNELS = (("-24 dB", "gain -24 dB"), ("+6 dB clipped", "gain +6 dB"), ("MP3", "MP3 "), ("Ogg", "Ogg "),
                    ("8 kHz", "resampled to 8 kHz"), ("16 kHz", "resampled to 16 kHz"))
SHARED_COMMAND = f'{COMMAND} ARGS="--model-dir DIR --family NAME [--variant TEXT] --clips-from RUN --save FILE.json"'
CHANNELS_TEXT = (
    "Channels (evaluation/channels.py): gains on the clip's own samples (+6 dB clipped at full scale); MP3 "
    f"{channels.MP3_KBPS} kbit/s constant and Ogg Vorbis quality 4, both 44.1 kHz stereo, encoded and decoded "
    "with libsndfile; soxr resampling; the device: an 8th-order 150 Hz-7 kHz band-pass, a synthetic room "
    f"(RT60 {channels.DEVICE_RT60_SECONDS:g} s, direct sound {channels.DEVICE_DRR_DB:g} dB above the tail), "
    f"noise in the same band at {channels.DEVICE_SNR_DB:g} dB SNR, room and noise seeded by the track id.")


@dataclasses.dataclass(frozen=True)
class HeldOutClip:
    path: str  # absolute
    genre: str
    track_id: str
    split: str


@dataclasses.dataclass(frozen=True)
class Figures:
    """One way of sending the clips, counted: what both tables are made of."""
    correct: int
    clips: int
    test_correct: int
    test_clips: int
    kept: Optional[int]  # answers equal to the original's (None for the original itself)
    refused: int = 0
    moves: str = "-"


@dataclasses.dataclass(frozen=True)
class ClipSet:
    clips: list[HeldOutClip]
    protocol: str
    source: str  # where the split memberships come from, for the report


class BenchError(Exception):
    """Something the user can fix; main prints it as one paragraph and exits 1."""


# ----- the clips ---------------------------------------------------------------------------------------------------

def records_file(path: str) -> str:
    """AudioExampleGen's files.jsonl for PATH: the file, its report folder, or an output dir or root holding one."""
    from components.audio_example_gen.quarantine import FILES_FILE

    for candidate in (path, os.path.join(path, FILES_FILE)):
        if os.path.isfile(candidate):
            return candidate
    found = sorted(glob.glob(os.path.join(path, "**", "AudioExampleGen", "quarantine", "*", FILES_FILE),
                             recursive=True))
    if len(found) != 1:
        raise BenchError(
            f"--clips-from {path}: expected one AudioExampleGen report (AudioExampleGen/quarantine/<id>/{FILES_FILE}) "
            f"below it, found {len(found)}{': ' + ', '.join(found) if found else ''}. Pass the report folder or "
            f"its {FILES_FILE}, or leave --clips-from out to take the split from --data-root and --split.")
    return found[0]


def clips_from_records(path: str, splits: Sequence[str]) -> ClipSet:
    """The ingested clips of SPLITS as AudioExampleGen recorded them (data root and protocol from its summary.json)."""
    from components.audio_example_gen.ingest import INGESTED
    from components.audio_example_gen.quarantine import SUMMARY_FILE, read_records

    files = records_file(path)
    summary = json.loads(Path(files).with_name(SUMMARY_FILE).read_text())
    clips = [HeldOutClip(os.path.join(summary["data_root"], r["path"]), r["genre"], r["track_id"], r["split"])
             for r in read_records(files) if r["status"] == INGESTED and r["split"] in splits]
    return ClipSet(clips, summary["split_protocol"], f"AudioExampleGen's records, `{files}`")


def clips_from_plan(data_root: str, protocol: str, split_dir: Optional[str], splits: Sequence[str]) -> ClipSet:
    """The clips of SPLITS as AudioExampleGen would assign them (its own discovery and planner, nothing decoded)."""
    from audio.discovery import discover, input_pattern
    from components.audio_example_gen.ingest import PENDING
    from components.audio_example_gen.plan import plan_tasks
    from config.settings import SplitConfig

    split_dir = split_dir if protocol in LIST_PROTOCOLS else None
    try:
        found = discover(data_root, input_pattern(data_root), GENRES)
        tasks = plan_tasks(found, SplitConfig(protocol=protocol, split_dir=split_dir), GENRES)
    except (FileNotFoundError, ValueError) as err:
        raise BenchError(f"Cannot list the clips: {err}") from None
    clips = [HeldOutClip(t.path, t.genre, t.track_id, t.split) for t in tasks
             if t.status == PENDING and t.split in splits]
    return ClipSet(clips, protocol, f"AudioExampleGen's planner on `{data_root}`"
                   + (f" with the lists in `{split_dir}`" if split_dir else ""))


def limit_per_genre(clips: list[HeldOutClip], limit: Optional[int]) -> list[HeldOutClip]:
    """The first LIMIT clips of each genre by track id (all with None), in genre then track order."""
    ordered = sorted(clips, key=lambda c: (c.genre, c.track_id))
    return [c for _, same in itertools.groupby(ordered, key=lambda c: c.genre) for c in list(same)[:limit]]


# ----- the model ---------------------------------------------------------------------------------------------------

def saved_model_dir(model_dir: str) -> str:
    """MODEL_DIR itself when it holds a SavedModel, else its newest complete numbered version (TF Serving's layout)."""
    if os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        return model_dir
    if not (versions := pushed_versions(model_dir)):
        raise BenchError(
            f"No model at {model_dir}: expected a SavedModel (saved_model.pb) there or in a numbered version folder "
            f"({model_dir}/<version>/saved_model.pb, as the Pusher writes). Run the pipeline (make run), or pass "
            "--model-dir with a pushed model or a Trainer's Format-Serving folder.")
    return os.path.join(model_dir, str(versions[-1]))


def in_process_predictor(export_dir: str) -> Predict:
    """``serving_default`` called in-process: the answer (REFUSED for a refused input) and its lead over the next."""
    import tensorflow as tf

    signature = tf.saved_model.load(export_dir).signatures["serving_default"]

    def predict(waveform: np.ndarray, sample_rate: int) -> tuple[str, Optional[float]]:
        try:
            out = signature(waveform=tf.constant(waveform, tf.float32), sample_rate=tf.constant(sample_rate, tf.int32))
        except tf.errors.InvalidArgumentError:
            return REFUSED, None
        top_two = np.sort(out["scores"].numpy())[-2:]
        return out["genre"].numpy().decode(), float(top_two[1] - top_two[0])

    return predict


# ----- the measurement ---------------------------------------------------------------------------------------------

def measure(clips: list[HeldOutClip], predict: Predict) -> list[dict]:
    """Per clip: genre, split, the answers to the original and to each channel's copy, and the original's margin."""
    from serving.audio_file import AudioFileError, read_audio

    rows = []
    started = time.perf_counter()
    for i, clip in enumerate(clips, 1):
        try:
            waveform, rate = read_audio(clip.path)
        except AudioFileError as err:
            raise BenchError(f"{err}. Check --data-root (or the data root the records name).") from None
        original, margin = predict(waveform, rate)
        answers = {ORIGINAL: original}
        seed = zlib.crc32(clip.track_id.encode())  # the clip's own room and noise, the same on every run
        for name, channel in channels.channels(seed).items():
            answers[name] = predict(*channel(waveform, rate))[0]
        rows.append({"track_id": clip.track_id, "genre": clip.genre, "split": clip.split, "answers": answers,
                     "margin": margin})
        if i % 10 == 0 or i == len(clips):
            print(f"[robustness] {i}/{len(clips)} clips, {time.perf_counter() - started:.0f} s")
    return rows


def accuracy_text(correct: int, clips: int) -> str:
    return f"{correct / clips:.3f} ({correct}/{clips})" if clips else "-"


def kept_text(f: Figures) -> str:
    return f"{f.kept / f.clips:.1%}"


def figures(rows: list[dict]) -> dict[str, Figures]:
    """Per way of sending the clips (the original first): accuracies, answers kept, refusals, moves."""
    test = [r for r in rows if r["split"] == "test"]
    counted = {}
    for name in rows[0]["answers"]:
        moved = Counter((r["answers"][ORIGINAL], r["answers"][name]) for r in rows
                        if r["answers"][name] != r["answers"][ORIGINAL])
        counted[name] = Figures(
            sum(r["answers"][name] == r["genre"] for r in rows), len(rows),
            sum(r["answers"][name] == r["genre"] for r in test), len(test),
            None if name == ORIGINAL else len(rows) - sum(moved.values()),
            sum(r["answers"][name] == REFUSED for r in rows),  # the top 3 moves
            ", ".join(f"{a} -> {b} ({n})" for (a, b), n in sorted(moved.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
            or "-")
    return counted


def table(counted: dict[str, Figures]) -> str:
    """The run's whole table: one line per way of sending the clips."""
    lines = ["| clips sent as | clip accuracy | test split only | answers equal to the original's | refused | "
             "changed answers went (original -> now, clips; top 3) |", "|---|---|---|---|---|---|"]
    for name, f in counted.items():
        name, kept = ((f"{name} ({f.clips} clips)", "-") if f.kept is None else
                      (name, f"{kept_text(f)} ({f.kept}/{f.clips})"))  # the original, then the channels
        lines.append(f"| {name} | {accuracy_text(f.correct, f.clips)} | "
                     f"{accuracy_text(f.test_correct, f.test_clips)} | {kept} | {f.refused} | {f.moves} |")
    return "\n".join(lines)


def near_ties_text(rows: list[dict]) -> str:
    """Margins of the answers a gain moved, beside the near ties: moving only there is no lean on level."""
    known = [r for r in rows if r.get("margin") is not None]
    if not known:
        return ""
    gains = [channels.gain_name(db) for db in channels.GAINS_DB]
    moved = sorted(r["margin"] for r in known if any(r["answers"][g] != r["answers"][ORIGINAL] for g in gains))
    near = sum(r["margin"] < NEAR_TIE for r in known)
    text = (f"Near ties: on {near} of {len(known)} clips the original's two highest genre scores differ by less "
            f"than {NEAR_TIE:g}")
    if moved:
        shown = ", ".join(f"{m:.3f}" for m in moved[:10]) + (" (the 10 lowest)" if len(moved) > 10 else "")
        text += f"; the {len(moved)} clips whose answer a gain moved had margins {shown}"
    return text + "."


def row_label(family: str, variant: Optional[str]) -> str:
    """The shared table's row key: the family, and the setting it was trained with if named."""
    return f"{family} ({variant})" if variant else family


def row_rank(label: str) -> tuple:
    """Rows in the order of config.settings.MODEL_TYPES, a family's preset before its variants; others last."""
    family = label.split(" (")[0]
    return (MODEL_TYPES.index(family) if family in MODEL_TYPES else len(MODEL_TYPES), family, label)


def summary_row(label: str, counted: dict[str, Figures], stamp: str, commit: str, cpu: str) -> str:
    """The run's row of the shared table."""
    def channel(start: str) -> Figures:
        return next(f for name, f in counted.items() if name.startswith(start))

    original, device = counted[ORIGINAL], channel("device:")
    cells = [label, accuracy_text(original.correct, original.clips),
             accuracy_text(original.test_correct, original.test_clips),
             *(kept_text(channel(start)) for _, start in SUMMARY_CHANNELS),
             f"{device.correct / device.clips:.3f}; {kept_text(device)}",
             f"{stamp.removesuffix(' UTC')} ({commit})", cpu]
    return "| " + " | ".join(cells) + " |"


def write_row(row: str) -> None:
    """ROW in place of its family's row of the shared section (what every row measured, once), others kept."""
    rows = put_row(table_rows(read_section(SECTION)), row, row_rank)
    body = "\n".join([
        "Each held-out clip (the eval and test splits of the split the model was trained on; the eval split chose "
        "the training epochs, the test split did not) sent to the model's `serving_default` signature, the one TF "
        "Serving runs, called in-process (no gRPC), decoded as the client decodes a file (libsndfile, averaged to "
        "mono, its own rate); then sent again through each channel.",
        "",
        CHANNELS_TEXT,
        "",
        "Accuracy: the original's clip accuracy over every clip sent and over the test split's. Answers kept: the "
        "share of clips whose answer through the channel equals the clip's own answer. Device: the accuracy through "
        "the device, then its answers kept. One row per family, or per named setting of one (`--variant`); each "
        "run's whole table (every channel, refusals, where changed answers went, near ties, time and load) is the "
        "`.md` file beside its `--save` JSON.",
        "",
        "| family (variant) | clip accuracy | test split only | "
        + " | ".join(column for column, _ in SUMMARY_CHANNELS)
        + " | device: accuracy; kept | date UTC (commit) | CPU |",
        "|---|" + "---|" * (len(SUMMARY_CHANNELS) + 5),
        *rows,
    ])
    write_section(SECTION, TITLE, body, command=SHARED_COMMAND, stamped=False)


def report(rows: list[dict], clip_set: ClipSet, export_dir: str, family: str, limit: Optional[int],
           load: tuple[tuple[float, ...], tuple[float, ...]], seconds: float, trained_by: Optional[str] = None) -> str:
    per_split = Counter(r["split"] for r in rows)
    per_genre = Counter(r["genre"] for r in rows)
    near_ties = near_ties_text(rows)
    return "\n".join([
        *([f"Trained by `{trained_by.strip()}`.", ""] if trained_by and trained_by.strip() else []),
        f"Model ({family}): `{os.path.abspath(export_dir)}`, signature `serving_default` called in-process "
        "(the signature TF Serving runs; no gRPC). Each clip decoded as the client decodes a file "
        "(libsndfile, averaged to mono, its own rate).",
        "",
        f"Clips: {len(rows)} held-out clips ({', '.join(f'{s} {per_split[s]}' for s in sorted(per_split))}; "
        f"{', '.join(f'{g} {per_genre[g]}' for g in sorted(per_genre))}), protocol {clip_set.protocol}, "
        f"from {clip_set.source}"
        + (f"; the first {limit} of each genre by track id (`--limit {limit}`)" if limit else "; every one") + "."
        + (" No clip of the train split; the eval split chose the training epochs, the test split did not."
           if "train" not in per_split else ""),
        "",
        CHANNELS_TEXT,
        "",
        table(figures(rows)),
        "",
        *([near_ties, ""] if near_ties else []),
        f"{seconds:.0f} s for {len(rows)} clips x {len(rows[0]['answers'])} requests; load average "
        + " at the start, ".join(" / ".join(f"{x:.2f}" for x in averages) for averages in load)
        + " at the end (1 / 5 / 15 min).",
    ])


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluation.robustness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=PipelineConfig().serving_dir,
                        help="a pushed model (DIR/<version>/saved_model.pb, the newest version) or one SavedModel "
                             "(DIR/saved_model.pb) (default: %(default)s)")
    parser.add_argument("--family", required=True, help="the model's family, as its row names it (cnn, musicnn, ...)")
    parser.add_argument("--variant", help="a setting the model was trained with, named in its row of the table "
                                          "(its key), e.g. 'without device views' (default: the family's preset)")
    parser.add_argument("--trained-by", help="the command that trained the model, e.g. 'python -m evaluation.accuracy "
                                             "--models musicnn --seeds 42'; written at the top of the run's .md")
    parser.add_argument("--clips-from", help="AudioExampleGen's records: a pipeline output dir or root, its report "
                                             "folder or files.jsonl (default: ExampleGen's planner on --data-root)")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT), help="(default: %(default)s)")
    parser.add_argument("--split", default="lists-trainval", choices=SPLIT_PROTOCOLS,
                        help="split protocol without --clips-from (default: %(default)s)")
    parser.add_argument("--split-dir", default=str(DEFAULT_SPLIT_DIR), help="(default: %(default)s)")
    parser.add_argument("--splits", default="eval,test", help="splits whose clips are sent (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="the first N clips of each genre only (default: all)")
    parser.add_argument("--save", help="also write every clip's answers to this JSON file, and the run's whole "
                                       "table beside it (the same name, .md)")
    add_no_write(parser)
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    try:
        export_dir = saved_model_dir(args.model_dir)
        clip_set = (clips_from_records(args.clips_from, splits) if args.clips_from else
                    clips_from_plan(args.data_root, args.split, args.split_dir, splits))
        clips = limit_per_genre(clip_set.clips, args.limit)
        if not clips:
            raise BenchError(f"No clips of the {', '.join(splits)} split(s) from {clip_set.source}. Check --splits, "
                             "--data-root and --split (or --clips-from).")
        print(f"[robustness] {len(clips)} clips, {len(channels.channels(0)) + 1} requests each, to {export_dir}")
        before = os.getloadavg()
        rows, took = timed(lambda: measure(clips, in_process_predictor(export_dir)))
        body = report(rows, clip_set, export_dir, args.family, args.limit, (before, os.getloadavg()), took["wall"],
                      args.trained_by)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(body)
    stamp, commit = run_stamp()
    label = row_label(args.family, args.variant)
    if args.save:
        Path(args.save).write_text(json.dumps(rows, indent=1))
        command = f"{COMMAND} ARGS=\"{shlex.join(argv if argv is not None else sys.argv[1:])}\""
        Path(args.save).with_suffix(".md").write_text(
            f"## {TITLE}: {label}\n\n{run_header(command, stamp, commit)}\n\n{body.strip()}\n")
    if not args.no_write:
        write_row(summary_row(label, figures(rows), stamp, commit, cpu_description()))


if __name__ == "__main__":
    main()
