"""``python -m tagging ROOT --out DIR``: tag every audio file under ROOT (or a glob) with the genre model.

Examples::

    python -m tagging /data/music --out tags/                      # newest pushed model, DirectRunner in-process
    python -m tagging 'gs://bucket/music/**/*.mp3' --out gs://bucket/tags/ --champion --mlflow-uri http://mlflow:5000
    python -m tagging /data/music --out tags/ --dask 10.0.0.5:8786  # a Dask cluster (docs/distributed.md)
    python -m tagging /data/music --out tags/ --zero-shot           # no trained model: EfficientAT's AudioSet genres
    python -m tagging /data/music --out tags/ --write-tags          # the genre and score into each file's own tags
    python -m tagging --undo tags/write_undo.jsonl                  # every file written back to its original bytes
    python -m tagging /data/music --out tags/ --retag               # every file again, not only new and changed ones

The console shows the job's own lines; TensorFlow's, Beam's and the decoders' output goes to a log file.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import traceback
from typing import Optional

from config.errors import UserError, find_user_error
from config.settings import MODEL_TYPES, PipelineConfig
from local_run.console import RunConsole
from local_run.failure import error_detail
from pipeline import beam_args as runners


def parser() -> argparse.ArgumentParser:
    d = PipelineConfig()
    p = argparse.ArgumentParser(prog="python -m tagging", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Outputs: tags.csv, tags.jsonl, tags.parquet, quarantine.jsonl, summary.json, "
                                "playlists/<genre>.m3u8, write_plan.jsonl, write_failures.jsonl (and with --write-tags "
                                "write_undo.jsonl, undo/).")
    p.add_argument("source", nargs="?", help="folder of audio files (searched recursively) or a quoted glob; local or "
                   "any file system Beam/TFX read (gs://, s3://, hdfs://)")
    p.add_argument("--out", help="output folder (created; required unless --undo). A re-run into it tags only the "
                   "files that are new or changed since; unchanged, moved and re-tagged files keep their rows")
    p.add_argument("--retag", action="store_true", help="tag every file again, whatever --out holds (another "
                   "model does so by itself)")
    g = p.add_argument_group("tags in the files (docs/tagging.md; default: a dry run that writes write_plan.jsonl)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--write-tags", action="store_true", help="write the predicted genre and its score into each "
                   "file's own tags (GENRE_PREDICTED, GENRE_SCORE), atomically, logging what --undo needs")
    w.add_argument("--dry-run", dest="write_tags", action="store_false",
                   help="only plan: write_plan.jsonl says what would be written; no file is touched (the default)")
    g.add_argument("--genre-field", action="store_true", help="the genre into the standard genre field (TCON, "
                   "\xa9gen, GENRE, WM/Genre) instead of GENRE_PREDICTED")
    g.add_argument("--undo", metavar="LOG", help="restore every file an earlier --write-tags wrote (its "
                   "write_undo.jsonl) byte for byte, then stop")
    g = p.add_argument_group("model (default: the newest complete version in --serving-dir)")
    g.add_argument("--serving-dir", default=d.serving_dir,
                   help="pushed models, TF Serving layout (default: %(default)s)")
    g.add_argument("--version", help="a version number in --serving-dir (default: the newest complete one)")
    g.add_argument("--model-dir", help="a SavedModel directory to use instead")
    g.add_argument("--champion", action="store_true",
                   help="the MLflow registry's 'champion' model (needs --mlflow-uri)")
    g.add_argument("--mlflow-uri", help="MLflow tracking URI for --champion")
    g.add_argument("--zero-shot", action="store_true",
                   help="no trained model: EfficientAT mn04's AudioSet genre classes (Blues, Classical music, ...) "
                   "scored per segment and averaged, decoded at 32 kHz (tagging/zero_shot.py)")
    g.add_argument("--efficientat-weights", metavar="PATH", help="--zero-shot: mn04_as_mAP_432.pt (default: "
                   "$GENRE_EFFICIENTAT_WEIGHTS, the weights cache, else a one-time download)")
    g.add_argument("--model", choices=MODEL_TYPES, default=d.train.model, help="family the model was trained as: "
                   "sets the decode rate (VGG, LSTM, musicnn 16 kHz, efficientat and musicnn_efficientat 32 kHz, else "
                   "22.05 kHz) unless --champion reads it from the run (default: %(default)s)")
    g.add_argument("--segment-seconds", type=float, default=d.audio.segment_seconds,
                   help="the model's segment length: shorter files are quarantined as too_short (default: %(default)s)")
    g = p.add_argument_group("execution")
    g.add_argument("--batch-size", type=int, default=8, help="files per RunInference batch (default: %(default)s)")
    g.add_argument("--runner", help="Beam runner (default: DirectRunner in this process, in_memory)")
    g.add_argument("--beam-arg", action="append", dest="beam_args", metavar="ARG",
                   help="Beam pipeline argument, repeatable (replaces the defaults, as for local_runner.py; "
                   "e.g. --beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=8 "
                   "on a machine with many cores)")
    g.add_argument("--dask", metavar="HOST:PORT",
                   help=f"run on the Dask scheduler at HOST:PORT (runner {runners.DASK_RUNNER})")
    g.add_argument("--dask-partitions", type=int, help="Dask partitions (tasks) to split the files into (default: "
                   "one per batch, at most 64)")
    g.add_argument("--tf-threads", type=int, help="TensorFlow threads per worker process (default: TensorFlow's, "
                   "all cores; 1 suits one worker per core)")
    g.add_argument("--no-parquet", dest="parquet", action="store_false", help="skip tags.parquet")
    return p


def _tag(args: argparse.Namespace) -> dict:
    # TensorFlow and Beam load here, not at import: under cli()'s console their start-up output reaches the log only.
    from tagging import model as model_lib, pipeline as tag_pipeline, zero_shot
    audio = PipelineConfig().with_model(args.model).audio
    audio = dataclasses.replace(audio, segment_seconds=args.segment_seconds, hop_seconds=args.segment_seconds)
    if args.zero_shot:
        if args.champion or args.model_dir or args.version:
            raise UserError("--zero-shot tags without a trained model, so it takes no --champion, --model-dir or "
                            "--version.", where="tagging --zero-shot", fix="leave out either --zero-shot or those.")
        audio = zero_shot.family_config(args.segment_seconds).audio
        ref = zero_shot.model_ref(args.efficientat_weights)
    elif args.champion:
        if not args.mlflow_uri:
            raise UserError("--champion needs the MLflow store.", where="tagging --champion",
                            fix="add --mlflow-uri URI (for a local run: "
                                "sqlite:///<output-dir>/pipeline_root/mlflow.db).")
        ref, params = model_lib.mlflow_champion(args.mlflow_uri)
        audio = dataclasses.replace(audio, **{k: type(getattr(audio, k))(params[f"audio.{k}"]) for k in
                                              ("sample_rate", "segment_seconds", "hop_seconds", "silence_dbfs")
                                              if f"audio.{k}" in params})
    elif args.model_dir:
        ref = model_lib.saved_model(args.model_dir)
    else:
        ref = model_lib.latest_version(args.serving_dir, args.version)
    return tag_pipeline.run(tag_pipeline.TagJob(
        source=args.source, out_dir=args.out, model=ref, audio=audio, batch_size=args.batch_size,
        beam_args=runners.beam_args(args.runner, args.beam_args, args.dask, defaults=runners.IN_PROCESS),
        parquet=args.parquet, write_tags=args.write_tags, genre_field=args.genre_field,
        dask_partitions=args.dask_partitions, tf_threads=args.tf_threads, retag=args.retag))


def _parse(argv: Optional[list[str]]) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.undo:
        if args.source or args.write_tags:
            p.error("--undo restores files and tags none: it takes no SOURCE or --write-tags")
    elif not args.source or not args.out:
        p.error("SOURCE and --out are required (unless --undo LOG)")
    elif args.write_tags and "://" in args.out:
        p.error("--write-tags keeps its undo log and the original bytes in --out, which must be a local folder")
    return args


def _run(args: argparse.Namespace) -> dict:
    if args.undo:
        from tagging import undo
        return undo.restore(args.undo, log=lambda m: print(m, file=sys.stderr, flush=True))
    try:
        return _tag(args)
    except Exception as err:  # a UserError (maybe wrapped by Beam) is one paragraph, not a traceback
        user = find_user_error(err)
        if user is None:
            raise
        raise UserError(f"tagging failed: {user.paragraph()}") from err


def main(argv: Optional[list[str]] = None) -> dict:
    """The job in this process, its output as it comes (what tests and other Python code call)."""
    args = _parse(argv)
    try:
        return _run(args)
    except UserError as err:
        print(str(err), file=sys.stderr)
        raise SystemExit(2) from None


def cli(argv: Optional[list[str]] = None) -> None:
    """``python -m tagging``: a failure a user can fix is one paragraph, anything else names the log file."""
    args = _parse(argv)  # --help and usage errors go straight to the terminal
    # --out/logs, or the temporary folder's where --out is remote or absent (--undo)
    local_out = args.out and "://" not in args.out
    folder = os.path.join(args.out, "logs") if local_out else os.path.join(tempfile.gettempdir(), "genre-tagging-logs")
    path = os.path.join(folder, f"tag-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    with RunConsole(path) as console:
        print(f"[tag] log file: {path}", flush=True)
        try:
            _run(args)
            return
        except UserError as err:
            traceback.print_exc()  # to the log file only
            console.show(str(err))
            code = 2
        except BaseException as err:  # noqa: BLE001 - one line on the console, the traceback in the log
            traceback.print_exc()
            console.show(f"tagging failed: {type(err).__name__}: {error_detail(err)}. The log file {path} has the "
                         "details.")
            code = 130 if isinstance(err, KeyboardInterrupt) else 1
    raise SystemExit(code)


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    cli()
