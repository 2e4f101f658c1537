"""How a family's held-out accuracy grows with its training clips: the Trainer on nested subsets of train.

    make bench-curve ARGS="--model musicnn --output-dir /tmp/genre-bench288/real-musicnn --fractions 0.25,0.5,1 --draws 3"

Why: the accuracy bars (0.85 for the recommended family, 0.70 for the CNN; ``bench.accuracy.TARGETS``) come from
published figures on the fault-filtered split, whose train list has 443 clips; this machine holds 314 of them. Whether a
family falls short for want of settings or for want of clips is a question a learning curve answers: if the
held-out accuracy still climbs steeply as training clips double up to all of them, the clips are the limit.

For each fraction, ``--draws`` runs: draw ``k`` keeps, per genre, ``max(1, round(fraction * n))`` of the
genre's training tracks (a seeded draw, ``k`` as its seed; fraction 1 keeps them all) and trains the
family's preset with its seed plus ``k`` (42 + k) through the Trainer's own code (``bench.trials.run_trial``: early
stopping on the whole eval split where the preset stops early). The eval and test splits are never cut.
Every run scores the eval split and the test split; both are read here to describe the curve, and the
tool chooses nothing. Each run appends one JSON line to ``<output-dir>/learning_curve.jsonl``, which a
later call with ``--reuse`` reads instead of training again; the summary and its plot come from those lines.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from bench.accuracy import TARGETS  # noqa: E402
from bench.real_data import add_real_data_arguments  # noqa: E402
from config.settings import MODEL_TYPES, PROJECT_ROOT, SPLITS, PipelineConfig  # noqa: E402
from pipeline.flags import whole_number  # noqa: E402

TRAIN = SPLITS[0]
RESULTS = "learning_curve.jsonl"
PLOTS_DIR = PROJECT_ROOT / "docs"  # where a written section's plot goes (BENCHMARKS.md links it)


def fraction_list(text: str) -> list[float]:
    """``"0.25,0.5,1"`` -> [0.25, 0.5, 1.0]; each in (0, 1], sorted, no repeats (argparse type)."""
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"give fractions of the training clips like 0.25,0.5,1, got {text!r}")
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"give fractions above 0 and at most 1, got {text!r}")
    return values


def draw_tracks(tracks_by_genre: dict[str, Sequence[str]], fraction: float, draw: int) -> set[str]:
    """Per genre, ``max(1, round(fraction * n))`` of its tracks, drawn with ``draw`` as the seed.

    Nested by construction: one permutation per genre and draw, cut at the count, so the tracks kept at
    a fraction are among those kept at any larger fraction of the same draw.
    """
    kept: set[str] = set()
    for genre in sorted(tracks_by_genre):
        tracks = sorted(tracks_by_genre[genre])
        order = np.random.default_rng([draw, len(tracks)]).permutation(len(tracks))
        count = len(tracks) if fraction >= 1 else max(1, int(round(fraction * len(tracks))))
        kept.update(tracks[i] for i in order[:count])
    return kept


def read_train_tracks(examples_uri: str, genres: Sequence[str]) -> dict[str, list[str]]:
    """Genre -> the track ids of the transformed train split (labels name the genre)."""
    import tensorflow as tf

    from models.preprocessing import LABEL_KEY, TRACK_ID_KEY

    spec = {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64), TRACK_ID_KEY: tf.io.FixedLenFeature([], tf.string)}
    pattern = os.path.join(examples_uri, f"Split-{TRAIN}", "*")
    by_genre: dict[str, set[str]] = defaultdict(set)
    for batch in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP").batch(1024):
        parsed = tf.io.parse_example(batch, spec)
        for label, track in zip(parsed[LABEL_KEY].numpy(), parsed[TRACK_ID_KEY].numpy()):
            by_genre[genres[int(label)]].add(track.decode())
    return {genre: sorted(tracks) for genre, tracks in by_genre.items()}


def subset_examples(examples_uri: str, keep: Iterable[str], folder: str) -> str:
    """A transformed-examples folder whose train split holds ``keep``'s tracks only; the other splits
    are links to the originals. Returns the folder (its Split-* layout is the Transform output's)."""
    import tensorflow as tf

    from models.preprocessing import TRACK_ID_KEY

    keep = {t.encode() for t in keep}
    spec = {TRACK_ID_KEY: tf.io.FixedLenFeature([], tf.string)}
    for split in SPLITS:
        if split != TRAIN:
            os.symlink(os.path.join(examples_uri, f"Split-{split}"), os.path.join(folder, f"Split-{split}"))
    os.makedirs(os.path.join(folder, f"Split-{TRAIN}"))
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    source = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{TRAIN}", "*")))
    with tf.io.TFRecordWriter(os.path.join(folder, f"Split-{TRAIN}", "subset.gz"), options) as writer:
        for batch in tf.data.TFRecordDataset(source, compression_type="GZIP").batch(1024):
            tracks = tf.io.parse_example(batch, spec)[TRACK_ID_KEY].numpy()
            for record, track in zip(batch.numpy(), tracks):
                if track in keep:
                    writer.write(record)
    return folder


def check_features(feature_spec: dict, config: PipelineConfig, output_dir: Path) -> None:
    """Refuse a Transform output made for another family's features, before any training.

    The tool trains ``config``'s preset on the newest Transform output in ``output_dir``; a CNN would train on
    musicnn's 96-band features without a word, and musicnn would fail deep inside Keras on the CNN's 128 bands.
    """
    from models.preprocessing import LABEL_KEY, SEGMENT_INDEX_KEY, TRACK_ID_KEY

    f = config.features
    kind, model = f.kind, config.train.model
    want_bins = {"log_mel": f.n_mels, "mfcc": f.n_mfcc}.get(kind)
    shape = tuple(feature_spec[kind].shape) if kind in feature_spec else None
    if shape is None or (want_bins is not None and (len(shape) != 2 or shape[-1] != want_bins
                                                   or (f.frames is not None and shape[0] != f.frames))):
        found = ", ".join(f"{key} {list(spec.shape)}" for key, spec in sorted(feature_spec.items())
                          if key not in (LABEL_KEY, TRACK_ID_KEY, SEGMENT_INDEX_KEY))
        raise SystemExit(f"{output_dir} holds a Transform output of other features ({found}) than {model}'s preset "
                         f"makes ({kind}{f' with {want_bins} bins' if want_bins else ''}). Give --output-dir a pipeline "
                         f"root of --model {model}, or a new folder: the tool then runs the pipeline up to the Trainer "
                         "there first.")


def summarise(results: list[dict]) -> list[dict]:
    """One row per fraction: training clips and eval/test clip and segment accuracy, mean and spread."""
    by_fraction: dict[float, list[dict]] = defaultdict(list)
    for r in results:
        by_fraction[r["fraction"]].append(r)
    rows = []
    for fraction in sorted(by_fraction):
        runs = by_fraction[fraction]
        row = {"fraction": fraction, "runs": len(runs),
               "train_clips": float(np.mean([r["train_clips"] for r in runs]))}
        for split in ("eval", "test"):
            for kind in ("clip_accuracy", "segment_accuracy"):
                values = [r[split][kind] for r in runs]
                row[f"{split}_{kind}"] = float(np.mean(values))
                row[f"{split}_{kind}_range"] = (float(min(values)), float(max(values)))
        rows.append(row)
    return rows


def gains(rows: list[dict], key: str) -> list[tuple[float, float, float]]:
    """(clips before, clips after, change of ``key``) between consecutive fractions: where the curve flattens."""
    return [(a["train_clips"], b["train_clips"], b[key] - a[key]) for a, b in zip(rows, rows[1:])]


def table(rows: list[dict]) -> str:
    def cell(row: dict, key: str) -> str:
        low, high = row[f"{key}_range"]
        return f"{row[key]:.3f} ({low:.3f}-{high:.3f})"

    lines = ["| fraction of train | training clips (mean) | runs | eval clip | test clip | eval segment | test segment |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['fraction']:g} | {r['train_clips']:.0f} | {r['runs']} | {cell(r, 'eval_clip_accuracy')} | "
                     f"{cell(r, 'test_clip_accuracy')} | {cell(r, 'eval_segment_accuracy')} | "
                     f"{cell(r, 'test_segment_accuracy')} |")
    lines.append("")
    steps = {f"{split} {kind}": gains(rows, f"{split}_{kind}_accuracy")
             for split in ("eval", "test") for kind in ("clip", "segment")}
    for i, (before, after, _) in enumerate(steps["eval clip"]):
        changes = ", ".join(f"{name} {by_step[i][2]:+.3f}" for name, by_step in steps.items())
        lines.append(f"- From {before:.0f} to {after:.0f} training clips: {changes}.")
    return "\n".join(lines)


def plot(rows: list[dict], model: str, path: str) -> str:
    """Clip accuracy against training clips (log scale), eval and test, with each fraction's range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = [r["train_clips"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for split, style in (("eval", "o-"), ("test", "s--")):
        key = f"{split}_clip_accuracy"
        means = [r[key] for r in rows]
        low = [r[key] - r[f"{key}_range"][0] for r in rows]
        high = [r[f"{key}_range"][1] - r[key] for r in rows]
        ax.errorbar(clips, means, yerr=[low, high], fmt=style, capsize=3, label=f"{split} split (held out)")
    target = TARGETS.get(model)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:.2f} (mean test clip)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(clips, [f"{c:.0f}" for c in clips])
    ax.set_xlabel("training clips")
    ax.set_ylabel("clip accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(f"{model}: held-out clip accuracy against training clips")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def report(rows: list[dict], model: str, examples_uri: str, first_seed: int) -> str:
    """The section's text: protocol, what a run is, the table and the change between fractions."""
    return (f"Protocol: **lists-trainval** (the Transform output {examples_uri}); each genre's training clips cut to a "
            f"fraction by a seeded draw, nested across fractions; the eval and test splits whole. `{model}`'s preset "
            f"through the Trainer's own code, seed {first_seed} + draw. Figures are clip accuracy (soft vote) and segment "
            f"accuracy, mean (min-max) over the draws. The tool chooses nothing: test is recorded.\n\n{table(rows)}")


def read_results(path: Path, model: str, examples_uri: str) -> list[dict]:
    """The runs of ``model`` on this Transform output in ``path``, the latest line of each (fraction, draw)."""
    if not path.exists():
        return []
    latest: dict[tuple[float, int], dict] = {}  # a run trained again replaces the earlier line
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if r["model"] == model and r["transform"] == examples_uri:
                latest[(r["fraction"], r["draw"])] = r
    return list(latest.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.learning_curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, help="pipeline root folder (--output-dir of local_runner)")
    parser.add_argument("--model", choices=MODEL_TYPES, required=True)
    parser.add_argument("--fractions", type=fraction_list, default=fraction_list("0.25,0.5,1"),
                        help="fractions of each genre's training clips (default: 0.25,0.5,1)")
    parser.add_argument("--draws", type=whole_number(1), default=3, help="runs per fraction (default: %(default)s)")
    parser.add_argument("--reuse", action="store_true", help=f"take runs already in <output-dir>/{RESULTS}")
    add_real_data_arguments(parser, "unused here")  # --no-write: print only, the plot beside the results
    args = parser.parse_args(argv)

    import tensorflow_transform as tft

    from bench.training import prepare
    from bench.trials import run_trial

    output_dir = Path(args.output_dir).resolve()
    graph_uri, examples_uri = prepare(args.model, output_dir, args.data_root, args.split_dir,
                                      output_dir / "trials-prepare.log")
    preset = PipelineConfig().with_model(args.model)
    check_features(tft.TFTransformOutput(graph_uri).transformed_feature_spec(), preset, output_dir)
    tracks = read_train_tracks(examples_uri, preset.genres)
    results_path = output_dir / RESULTS
    done = {(r["fraction"], r["draw"]) for r in read_results(results_path, args.model, examples_uri)} if args.reuse else set()
    for fraction in args.fractions:
        for draw in range(args.draws):
            if (fraction, draw) in done:
                continue
            keep = draw_tracks(tracks, fraction, draw)
            seed = preset.train.seed + draw
            config = dataclasses.replace(preset, train=dataclasses.replace(preset.train, seed=seed))
            with tempfile.TemporaryDirectory() as folder:
                result = run_trial(config, graph_uri, subset_examples(examples_uri, keep, folder))
            result = {"model": args.model, "fraction": fraction, "draw": draw, "seed": seed,
                      "train_clips": len(keep), "transform": examples_uri, **result}
            print(f"[curve] {args.model} fraction {fraction:g} draw {draw}: {len(keep)} training clips, eval clip "
                  f"{result['eval']['clip_accuracy']:.3f}, test clip {result['test']['clip_accuracy']:.3f}", flush=True)
            with open(results_path, "a") as f:
                f.write(json.dumps(result, sort_keys=True) + "\n")
    wanted = set(args.fractions)
    rows = summarise([r for r in read_results(results_path, args.model, examples_uri)
                      if r["fraction"] in wanted and r["draw"] < args.draws])
    body = report(rows, args.model, examples_uri, preset.train.seed)
    print(body)
    picture = (output_dir if args.no_write else PLOTS_DIR) / f"learning-curve-{args.model}.png"
    print(f"[curve] plot: {plot(rows, args.model, str(picture))}")
    if not args.no_write:
        from bench.report import write_section

        link = picture.relative_to(PROJECT_ROOT)
        write_section(f"learning-curve-{args.model}", f"Learning curve: {args.model} on nested subsets of the training clips",
                      f"{body}\n\n![{args.model} learning curve]({link})\n",
                      command=f"make bench-curve ARGS=\"--model {args.model} --fractions "
                              f"{','.join(f'{f:g}' for f in args.fractions)} --draws {args.draws} "
                              f"--output-dir {args.output_dir}\"")


if __name__ == "__main__":
    main(sys.argv[1:])
