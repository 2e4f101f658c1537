"""Batch tagging throughput: the tagger on the DirectRunner and on Dask (1 and 2 workers) vs a plain loop.

    python -m bench.tagging [--data-root DIR] [--model-dir DIR] [--version V] [--files N] [--repeats R]
    python -m bench.tagging --incremental [--files N] [--entries N]     (a library that changes)
    (make bench-tagging)

On the same files and model: a plain loop (ingestion's decode and one ``serving_default`` call per file, the model
loaded once); ``python -m tagging`` on the DirectRunner (in_memory, and multi_processing with 2 workers); and on a
local Dask cluster of 1 and 2 workers, new and then warm (TensorFlow and the model loaded, as a long-lived cluster
serves repeated jobs). The tagger's walls are the whole Beam run as a user waits for it, cluster start-up excluded.
Rows are interleaved, ``--repeats`` times each, and the median is shown with the range.

``--incremental``: ``python -m tagging`` processes into one ``--out`` (a first run on N synthetic tracks, re-runs
with nothing changed and with 20 new files), then the bookkeeping alone of ``--entries`` unchanged files.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.real_data import DEFAULT_DATA_ROOT
from bench.pushed_models import GRAPH_NAMES, export_graphs, load_pushed
from bench.report import add_no_write, child_env, make_command, publish
from config.settings import PROJECT_ROOT, PipelineConfig
from pipeline import beam_args as runners
from tagging import files as files_lib, incremental
from tagging import pipeline as tag_pipeline
from tagging.model import SIGNATURE, latest_version, unload_models

DIRECT_2 = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
IN_PROCESS = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def subset(data_root: Path, n: int, out: Path) -> Path:
    """The first N files in name order, spread over the genres, linked into one folder."""
    by_genre: dict[str, list[tuple[str, str]]] = {}
    for path, rel in files_lib.list_audio(str(data_root)).files:
        by_genre.setdefault(rel.split("/")[0], []).append((path, rel))
    picked = [f for rank in itertools.zip_longest(*(by_genre[g] for g in sorted(by_genre))) for f in rank if f][:n]
    for path, rel in picked:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path, out / rel)
    return out


def loop(source: Path, model_path: str, audio) -> dict:
    import tensorflow as tf

    started, cpu = time.time(), time.process_time()
    signature = tf.saved_model.load(model_path).signatures[SIGNATURE]
    load = time.time() - started
    seconds, files = 0.0, 0
    for path, rel in files_lib.list_audio(str(source)).files:
        clip = files_lib.decode_file(path, rel, audio)
        files += 1
        if "waveform" in clip:
            signature(waveform=tf.constant(clip["waveform"]), sample_rate=tf.constant(clip["sample_rate"], tf.int32))
            seconds += clip["seconds"]
    wall = time.time() - started
    return {"audio_seconds": seconds, "wall_seconds": wall, "files": files, "load_seconds": load,
            "cpu_seconds": time.process_time() - cpu}


def tagger(source: Path, out: Path, model, audio, args: list[str] = IN_PROCESS, tf_threads=None) -> dict:
    if args is IN_PROCESS:  # in this process: unloaded, so the model loads within the run as in `python -m tagging`
        unload_models()
    s = tag_pipeline.tag(str(source), str(out), model, beam_args=args, audio=audio, tf_threads=tf_threads)
    return {"audio_seconds": s["audio_seconds"], "wall_seconds": s["wall_seconds"], "files": s["files"]["listed"]}


def _shown(path: str) -> str:
    """A path inside the repository as a relative path; anything else by its last two parts."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return "<model dir>/" + "/".join(Path(path).parts[-2:])


def _rows(source: Path, tmp: Path, model, audio, repeat: int):
    """(name, run) for every configuration of one repeat; each run returns its figures."""
    import distributed

    yield "loop: in-process SavedModel calls, 1 process", lambda: loop(source, model.path, audio)
    yield "tagger, DirectRunner (in_memory, 1 process)", lambda: tagger(source, tmp / f"inproc{repeat}", model, audio)
    yield "tagger, DirectRunner (multi_processing, 2 workers)", lambda: tagger(
        source, tmp / f"direct{repeat}", model, audio, DIRECT_2)
    for workers, tf_threads in ((1, None), (2, None), (2, 1)):
        name = f"tagger, Dask ({workers} worker{'s' * (workers > 1)}" + (
            f", --tf-threads {tf_threads}" if tf_threads else "")
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as cluster:
            args = runners.dask_args(cluster.scheduler_address)
            for run in ("new", "warm"):  # warm: same workers again, TensorFlow and the model loaded
                out = tmp / f"dask{workers}{tf_threads}{run}{repeat}"
                yield f"{name}, {run} cluster)", lambda: tagger(source, out, model, audio, args, tf_threads=tf_threads)


def _graph_rows(source: Path, tmp: Path, models: dict, audio, repeat: int):
    """(name, run) of the loop and the in-process tagger for every exported graph of one model."""
    for label, model in models.items():
        out = tmp / f"inproc-{label}{repeat}".replace(" ", "_")
        yield f"loop, {label}", lambda model=model: loop(source, model.path, audio)
        yield f"tagger, DirectRunner (in_memory, 1 process), {label}", lambda model=model, out=out: tagger(
            source, out, model, audio)


def _tag_process(source: Path, out: Path, model) -> dict:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tagging", str(source), "--out", str(out), "--model-dir", model.path],
                   env=child_env(), check=True, capture_output=True)
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": time.perf_counter() - started, "files": summary["files"]["listed"], **summary["changes"]}


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent
BOOKKEEPING = """import json, re, sys, time
from tfx.dsl.io import fileio  # loaded (with TensorFlow) in the tagger's process before its bookkeeping
from tagging import files, incremental
peak = lambda: int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
before, started = peak(), time.perf_counter()
index, _ = incremental.read_index(sys.argv[2], json.loads(sys.argv[3]))
changes = incremental.compare(files.list_audio(sys.argv[1]).files, index)
print(json.dumps({"seconds": time.perf_counter() - started, "unchanged": changes.counts["unchanged"],
                  "rss_before_mb": before, "rss_peak_mb": peak()}))
"""


def _bookkeeping(tmp: Path, n: int, identity: dict, row: dict) -> dict:
    """N files named like audio (never decoded: all unchanged) and earlier results with a full row for each,
    then the comparison in a fresh process: its seconds and peak RSS."""
    root, out = tmp / "entries", tmp / "entries-out"
    out.mkdir()
    with open(out / "tags.jsonl", "w") as index:
        for i in range(n):
            rel = f"a{i // 1000:03d}/b{i // 100 % 10}/{i:06d} track.flac"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"fLaC")
            st = os.stat(root / rel)
            index.write(json.dumps({**row, "path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns}) + "\n")
    (out / "summary.json").write_text(json.dumps({"model_identity": identity}))
    done = subprocess.run([sys.executable, "-c", BOOKKEEPING, str(root), str(out), json.dumps(identity)],
                          env=child_env(), check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def incremental_runs(args, model, argv) -> None:
    from synthetic.generator import generate_library
    load_before, library = os.getloadavg(), Path(tempfile.mkdtemp()) / "library"
    generate_library(library, args.files // 10, audio_format="flac")
    out = library.with_name("out")
    runs = {"first run": _tag_process(library, out, model),
            "re-run, nothing changed": _tag_process(library, out, model)}
    generate_library(library / "new arrivals", 2, seed=1, audio_format="flac")
    runs["re-run, 20 new files"] = _tag_process(library, out, model)
    row = json.loads((out / "tags.jsonl").read_text().splitlines()[0])
    kept = _bookkeeping(library.parent, args.entries, incremental.identity(model, PipelineConfig().audio), row)
    shutil.rmtree(library.parent)
    first = runs["first run"]["wall"]
    lines = ["| run | files | new | unchanged | inferred | wall s | of the first run's wall |", "|---" * 7 + "|"]
    lines += [f"| {name} | {r['files']} | {r['new']} | {r['unchanged']} | {r['inferred']} | {r['wall']:.1f} | "
              f"{100 * r['wall'] / first:.1f} % |" for name, r in runs.items()]
    body = "\n".join(lines) + (
        f"\n\nModel: {_shown(model.path)} (version {model.version}); {args.files} tracks of the synthetic set "
        "(30 s, FLAC, genre/artist/album folders: synthetic.generator.generate_library), the 20 new ones a folder of "
        "their own; each row one `python -m tagging LIBRARY --out OUT` process into the same OUT, timed from its "
        "start (Python, TensorFlow and Beam start-up included) to its exit."
        f"\n\nBookkeeping of {args.entries:,} unchanged entries (the listing's walk and checks, a stat of each file, "
        f"the earlier tags.jsonl read streamed and compared; {kept['unchanged']:,} found unchanged), in a process of "
        f"its own: {kept['seconds']:.1f} s; its peak RSS {kept['rss_peak_mb'] - kept['rss_before_mb']:.0f} MiB above "
        f"the imports' {kept['rss_before_mb']:.0f} MiB (TensorFlow included, as in the tagger's process), "
        f"{kept['rss_peak_mb']:.0f} MiB in all."
        f"\n\nLoad average (1 min) {load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after the run.")
    publish(body, not args.no_write, "tagging-incremental", "Batch tagging throughput: re-runs on a library that changes",
            make_command("bench-tagging", argv))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tagging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT), help="real clips (default: %(default)s)")
    parser.add_argument("--model-dir", default=PipelineConfig().serving_dir,
                        help="TF Serving layout base dir of the model (default: %(default)s)")
    parser.add_argument("--version", help="model version under --model-dir (default: the newest complete one)")
    parser.add_argument("--files", type=int, default=100, help="files to tag (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every row; the median is shown "
                        "(default: %(default)s)")
    parser.add_argument("--compare-graphs", action="store_true", help="a musicnn or LSTM model re-exported with "
                        "each graph of models/signatures.GRAPHS: the loop and the in-process tagger on each (section "
                        "tagging-graphs)")
    parser.add_argument("--transform-dir", help="with --compare-graphs: the model's Transform output (default: the "
                        "newest under the pipeline root)")
    parser.add_argument("--incremental", action="store_true", help="re-runs into one --out (section "
                        "tagging-incremental)")
    parser.add_argument("--entries", type=int, default=100_000, help="--incremental: entries (default: %(default)s)")
    parser.add_argument("--note", default="", help="a line printed under the table (e.g. what else loaded the machine)")
    add_no_write(parser)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    model = latest_version(args.model_dir, args.version)
    if args.incremental:
        return incremental_runs(args, model, argv)
    audio = PipelineConfig().audio
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = subset(Path(args.data_root), args.files, Path(tmp) / "clips")
        kinds = ", ".join(f"{n} {s}" for s, n in sorted(Counter(
            p.suffix.lstrip(".").upper() for p in source.rglob("*") if p.is_symlink()).items()))
        if args.compare_graphs:  # the model re-exported with each graph: label -> ModelRef
            keras_model, config, _ = load_pushed(str(Path(model.path).parent), args.transform_dir,
                                                 PipelineConfig().pipeline_root)
            graphs = {f"{keras_model.name}, {GRAPH_NAMES[graph]}": latest_version(base)
                      for graph, base in export_graphs(keras_model, config, os.path.join(tmp, "graphs")).items()}
        for repeat in range(args.repeats):
            rows = (_graph_rows(source, Path(tmp), graphs, audio, repeat) if args.compare_graphs
                    else _rows(source, Path(tmp), model, audio, repeat))
            for name, run in rows:
                runs.setdefault(name, []).append(run())
                print(f"[bench] {name}: {runs[name][-1]['wall_seconds']:.1f} s", flush=True)
    results = {name: {**rs[0], "wall_seconds": statistics.median(r["wall_seconds"] for r in rs),
                      **({"cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs)} if "cpu_seconds" in rs[0] else {}),
                      "walls": sorted(r["wall_seconds"] for r in rs)} for name, rs in runs.items()}
    base = next(iter(results.values()))
    base_rate = base["audio_seconds"] / base["wall_seconds"]
    lines = ["| how | files | audio s | wall s (median; range) | audio s / wall s | files / s | vs loop | CPU s (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        rate = r["audio_seconds"] / r["wall_seconds"]
        spread = f"{r['walls'][0]:.1f}-{r['walls'][-1]:.1f}" if len(r["walls"]) > 1 else "one run"
        lines.append(f"| {name} | {r['files']} | {r['audio_seconds']:.0f} | {r['wall_seconds']:.1f} ({spread}) | "
                     f"{rate:.1f} | {r['files'] / r['wall_seconds']:.2f} | {rate / base_rate:.2f}x | "
                     + (f"{r['cpu_seconds']:.1f} |" if "cpu_seconds" in r else "- |"))
    loads = sorted(r["load_seconds"] for r in runs[next(iter(runs))])
    busy = base["cpu_seconds"] / base["wall_seconds"]  # cores the loop keeps busy by itself
    body = "\n".join(lines) + (
        f"\n\nModel: {_shown(model.path)} (version {model.version}"
        + (", re-exported with each graph of models/signatures.GRAPHS" if args.compare_graphs else "") + "); "
        f"{args.files} real GTZAN clips ({kinds}, 30 s); {args.repeats} runs of every row, interleaved. "
        f"The loop's wall includes its model load ({loads[len(loads) // 2]:.1f} s, median); the tagger's include "
        "Beam's start-up and the model load (in every worker process, except on a warm cluster)."
        + f"\n\nThe loop's CPU time was {base['cpu_seconds']:.1f} s in {base['wall_seconds']:.1f} s of wall (median): "
        f"TensorFlow's threads already kept {busy:.2f} of the {os.cpu_count()} cores busy, so a design that does "
        f"the same work per file can be at most {os.cpu_count() / busy:.2f}x the loop on this machine."
        + f"\n\nLoad average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run"
        + (" (idle before the run)." if load_before < 1.0 else
           ": other processes shared the cores, so these are figures under load, not of an idle machine.")
        + ("\n\nCPU s: the process's CPU time (both cores), measured for the loop only (the tagger's work runs "
           "in Beam's threads and workers); on a shared machine it moves less with the other load than the wall."
           if args.compare_graphs else "")
        + (f"\n\n{args.note}" if args.note else ""))
    section = (("tagging-graphs", "Batch tagging throughput of musicnn's two exported graphs") if args.compare_graphs
               else ("tagging", "Batch tagging throughput (python -m tagging)"))
    publish(body, not args.no_write, *section, make_command("bench-tagging", argv))


if __name__ == "__main__":
    main()
