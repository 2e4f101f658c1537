"""Which pretrained embedding separates the genres best: linear probes on frozen embeddings, test never read.

    python -m bench.pretrained_bodies [--output-dir DIR] [--bodies MSD_musicnn,MSD_vgg]      (make bench-bodies)

Each body that ships in the musicnn wheel, as this project loads it (models/vgg.py, models/musicnn.py: tf_keras
ports checked against musicnn's TF1 graphs), embeds every 3-s segment of the ``train`` and ``eval`` splits of a
pipeline root's Transform output (16-kHz musicnn features; the pipeline is run up to a one-step Trainer first if
the root has none). The recordings only: a training view's segments (``--train-views``) are left out, so a probe
learns and is scored on what was recorded. One pass a body; its output is cached in
``<output-dir>/bodies-cache/<transform output>/recordings/<body>.npz``, so the views below and a re-run cost the
probes only.

Views of the bodies' outputs: the VGGs' pool5 flattened (256, the VGG family's head input) and the mean over time
and frequency of each of their five blocks (5 x 128); the musicnns' mid end (753 channels a frame) pooled over time
by its mean (musicnn's ``mean_pool``, the musicnn family's head input) and by mean and max together (1506, as
published probes of these bodies pool); and concatenations of several bodies' views.

Each view is scored by a standardised, class-balanced multinomial logistic regression at a few regularisation
strengths, two ways, neither of which reads the ``test`` split:

* **eval**: fitted on the train split's segments, scored on the eval split (segments, and clips by soft vote);
* **folds**: every train and eval clip held out once, in folds of consecutive track numbers per genre (as
  ``bench.folds``: an artist's clips mostly stay on one side), scored as clips by soft vote over segment
  probabilities, and by a clip-level probe: one vector per clip (the mean of its segments' embeddings).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from bench.real_data import add_real_data_arguments  # noqa: E402
from bench.report import write_section  # noqa: E402
from config.settings import GENRES, PipelineConfig  # noqa: E402

SPLITS = ("train", "eval")
STRENGTHS = (0.003, 0.01, 0.1)  # inverse L2 strength C of the logistic regression
FOLDS = 5
COMMAND = "make bench-bodies"
BODIES = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
MID_END = 753  # channels of a musicnn mid end, per frame
VGG_POOL5 = 256


@dataclasses.dataclass(frozen=True)
class View:
    """An embedding: columns of one or more bodies' cached outputs, side by side."""

    name: str
    parts: tuple[tuple[str, slice], ...]  # (body, columns)

    def bodies(self) -> set[str]:
        return {body for body, _ in self.parts}

    def of(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([outputs[body][:, columns] for body, columns in self.parts], axis=1)


def _musicnn(body: str, pooling: str) -> tuple[str, slice]:
    return body, slice(0, MID_END) if pooling == "mean" else slice(0, 2 * MID_END)


def _vgg(body: str, part: str) -> tuple[str, slice]:
    return body, slice(0, VGG_POOL5) if part == "pool5" else slice(VGG_POOL5, None)


VIEWS: tuple[View, ...] = (
    View("MSD_musicnn mean pool (753)", (_musicnn("MSD_musicnn", "mean"),)),
    View("MSD_musicnn mean+max pool (1506)", (_musicnn("MSD_musicnn", "mean+max"),)),
    View("MTT_musicnn mean pool (753)", (_musicnn("MTT_musicnn", "mean"),)),
    View("MTT_musicnn mean+max pool (1506)", (_musicnn("MTT_musicnn", "mean+max"),)),
    View("MSD_vgg pool5 (256)", (_vgg("MSD_vgg", "pool5"),)),
    View("MSD_vgg block means (640)", (_vgg("MSD_vgg", "blocks"),)),
    View("MTT_vgg pool5 (256)", (_vgg("MTT_vgg", "pool5"),)),
    View("MTT_vgg block means (640)", (_vgg("MTT_vgg", "blocks"),)),
    View("MSD_musicnn mean+max + MSD_vgg block means (2146)",
         (_musicnn("MSD_musicnn", "mean+max"), _vgg("MSD_vgg", "blocks"))),
    View("MSD_musicnn mean+max + MTT_musicnn mean+max (3012)",
         (_musicnn("MSD_musicnn", "mean+max"), _musicnn("MTT_musicnn", "mean+max"))),
    View("MSD_musicnn + MTT_musicnn mean+max + MSD_vgg block means (3652)",
         (_musicnn("MSD_musicnn", "mean+max"), _musicnn("MTT_musicnn", "mean+max"), _vgg("MSD_vgg", "blocks"))),
)


@dataclasses.dataclass
class Embedded:
    """One body's output for every segment of a split, with its labels and track ids."""

    embeddings: np.ndarray
    labels: np.ndarray  # genre index per segment
    track_ids: np.ndarray  # bytes per segment


def body_models(input_stats) -> dict[str, Callable]:
    """Body name -> builder of a Keras model from the (z-scored) transformed input to its cached output:
    musicnn: [mean, max] of the mid end over time (1506); VGG: [pool5 (256), five block means (640)]."""
    import tf_keras as keras

    from models import musicnn, vgg

    def vgg_outputs(checkpoint: str):
        def build():
            model = vgg.build_vgg((vgg.FRAMES, vgg.MELS), len(GENRES), None, input_stats=input_stats,
                                  checkpoint=checkpoint)
            means = [keras.layers.GlobalAveragePooling2D()(model.get_layer(f"{vgg.BACKBONE_PREFIX}block{i}_bn").output)
                     for i in range(1, len(vgg.POOLS) + 1)]
            return keras.Model(model.input, keras.layers.Concatenate()([model.get_layer("head_flatten").output,
                                                                        *means]))
        return build

    def musicnn_outputs(checkpoint: str):
        def build():
            model = musicnn.build_musicnn((musicnn.FRAMES, musicnn.MELS), len(GENRES), None, input_stats=input_stats,
                                          checkpoint=checkpoint)
            frames = model.get_layer(musicnn.MID_END).output
            return keras.Model(model.input, keras.layers.Concatenate()([
                keras.layers.GlobalAveragePooling1D()(frames), keras.layers.GlobalMaxPooling1D()(frames)]))
        return build

    return {"MSD_musicnn": musicnn_outputs("MSD_musicnn"), "MTT_musicnn": musicnn_outputs("MTT_musicnn"),
            "MSD_vgg": vgg_outputs("MSD_vgg"), "MTT_vgg": vgg_outputs("MTT_vgg")}


def embed_splits(body, files: dict[str, str], tft_output, config: PipelineConfig) -> dict[str, Embedded]:
    """split -> the body's output over every segment of the split, in the Trainer's canonical order."""
    import tempfile

    from models import training

    from bench.folds import segment_indices

    with tempfile.TemporaryDirectory() as scratch:
        shards = training.split_shards(tft_output, scratch, **{split: files[split] for split in SPLITS})
        return {split: recordings_only(
                    Embedded(*training.predict_split(body, training.make_dataset(
                        shards[split], tft_output, config, training=False, with_track_ids=True))),
                    segment_indices(shards[split].records(), tft_output))
                for split in SPLITS}


def recordings_only(embedded: Embedded, segment_index: np.ndarray) -> Embedded:
    """The segments of the recordings themselves: a training view's (segment_index from VIEW_INDEX_STRIDE on)
    shares its track id, so it would join the track's vote and its clip-level mean."""
    from components.audio_example_gen.views import VIEW_INDEX_STRIDE

    recorded = np.asarray(segment_index) < VIEW_INDEX_STRIDE
    return Embedded(embedded.embeddings[recorded], embedded.labels[recorded], embedded.track_ids[recorded])


def cached_embeddings(cache: Path, name: str, compute: Callable[[], dict[str, Embedded]]
                      ) -> tuple[dict[str, Embedded], float]:
    """The body's embeddings from ``cache/<name>.npz``, computed and saved first if absent; (splits, seconds
    the computation took, as recorded when it ran)."""
    path = cache / f"{name}.npz"
    if not path.exists():
        started = time.time()
        data = compute()
        # Track ids as fixed-width bytes: an object array would need pickle to load.
        arrays = {f"{split}_{field}": np.asarray(getattr(data[split], field),
                                                 dtype=np.bytes_ if field == "track_ids" else None)
                  for split in SPLITS for field in ("embeddings", "labels", "track_ids")}
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, seconds=time.time() - started, **arrays)
    with np.load(path) as saved:
        return ({split: Embedded(saved[f"{split}_embeddings"], saved[f"{split}_labels"], saved[f"{split}_track_ids"])
                 for split in SPLITS}, float(saved["seconds"]))


def _classifier(strength: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=3000, class_weight="balanced"))


def _probabilities(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, strength: float) -> np.ndarray:
    classifier = _classifier(strength).fit(x_train, y_train)
    probs = np.zeros((len(x_test), len(GENRES)), np.float32)
    probs[:, classifier.classes_] = classifier.predict_proba(x_test)
    return probs


def probe(data: dict[str, tuple], strength: float) -> tuple[float, float]:
    """(eval segment accuracy, eval clip accuracy) of a logistic regression fitted on train's segments."""
    from models import metrics

    (x_train, y_train, _), (x_eval, y_eval, t_eval) = data["train"], data["eval"]
    probs = _probabilities(x_train, y_train, x_eval, strength)
    return float((probs.argmax(axis=1) == y_eval).mean()), metrics.score(t_eval, probs, y_eval).clip_accuracy


def clip_means(x: np.ndarray, labels: np.ndarray, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per clip: (track ids, the mean of its segments' embeddings, its label); the vote's own
    per-clip mean (models.metrics.clip_votes), applied to embeddings instead of probabilities."""
    from models import metrics

    tracks, clip_labels, means = metrics.clip_votes(track_ids, x, labels)
    return tracks, means, clip_labels


def fold_probe(x: np.ndarray, labels: np.ndarray, track_ids: np.ndarray, strength: float,
               folds: int = FOLDS) -> tuple[int, int, int]:
    """Every clip held out once (folds of consecutive track numbers per genre): (clips, clips right by the soft
    vote of a segment-level probe, clips right by a clip-level probe on clips' mean embeddings)."""
    from bench.folds import fold_of_tracks
    from models import metrics

    names = np.array([t.decode() if isinstance(t, bytes) else str(t) for t in track_ids], dtype=object)
    assignment = fold_of_tracks(names, folds)
    fold = np.array([assignment[t] for t in names])
    segment_probs = np.zeros((len(labels), len(GENRES)), np.float32)
    tracks, clip_x, clip_y = clip_means(x, labels, names)
    clip_fold = np.array([assignment[t] for t in tracks])
    clip_probs = np.zeros((len(tracks), len(GENRES)), np.float32)
    for k in range(folds):
        held, kept = fold == k, fold != k
        segment_probs[held] = _probabilities(x[kept], labels[kept], x[held], strength)
        clip_probs[clip_fold == k] = _probabilities(clip_x[clip_fold != k], clip_y[clip_fold != k],
                                                    clip_x[clip_fold == k], strength)
    voted = metrics.score(names, segment_probs, labels)
    return voted.clips, int(np.trace(voted.clip_confusion)), int((clip_probs.argmax(axis=1) == clip_y).sum())


@dataclasses.dataclass
class Row:
    view: str
    strength: float
    eval_segment: float
    eval_clip: float
    fold_clips: int
    fold_vote: int
    fold_clip_probe: int
    seconds: float  # embedding time of the view's bodies


def score_view(view: View, outputs: dict[str, dict[str, Embedded]], strength: float, seconds: float) -> Row:
    train, evaluation = ({body: outputs[body][split].embeddings for body in view.bodies()} for split in SPLITS)
    first = outputs[next(iter(view.bodies()))]
    x_train, x_eval = view.of(train), view.of(evaluation)
    segment, clip = probe({"train": (x_train, first["train"].labels, first["train"].track_ids),
                           "eval": (x_eval, first["eval"].labels, first["eval"].track_ids)}, strength)
    clips, vote, clip_level = fold_probe(
        np.concatenate([x_train, x_eval]), np.concatenate([first["train"].labels, first["eval"].labels]),
        np.concatenate([first["train"].track_ids, first["eval"].track_ids]), strength)
    return Row(view.name, strength, segment, clip, clips, vote, clip_level, seconds)


def report(rows: list[Row], clips: int, segments: int, source: str) -> str:
    fold_clips = rows[0].fold_clips if rows else 0
    lines = [f"Transform output: `{source}`. Eval split: {clips} clips, {segments} segments (lists-trainval: "
             "artist-disjoint from train where a genre has clips in both lists). Folds: the "
             f"{fold_clips} train and eval clips, {FOLDS} folds of consecutive track numbers per genre, each clip "
             "held out once. Probe: standardised multinomial logistic regression, class-balanced. The test split "
             "is never read.", "",
             "| embedding | C | eval segment accuracy | eval clip accuracy (soft vote) | folds: clips right, soft vote "
             "| folds: clips right, clip-level probe | embedding s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.view} | {r.strength:g} | {r.eval_segment:.3f} | {r.eval_clip:.3f} | "
              f"{r.fold_vote}/{r.fold_clips} ({r.fold_vote / r.fold_clips:.3f}) | "
              f"{r.fold_clip_probe}/{r.fold_clips} ({r.fold_clip_probe / r.fold_clips:.3f}) | {r.seconds:.0f} |"
              for r in rows]
    lines += ["", "\"embedding s\": the seconds the view's bodies took to embed the train and eval segments, as "
              "recorded when each body's cache was written."]
    return "\n".join(lines)


def parse_bodies(text: str) -> list[str]:
    bodies = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in bodies if b not in BODIES]
    if unknown or not bodies:
        raise argparse.ArgumentTypeError(f"expected bodies among {', '.join(BODIES)}, got {text!r}")
    return bodies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pretrained_bodies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="", help="pipeline root with a musicnn-feature Transform output "
                        "(default: <output-root>/real-musicnn)")
    parser.add_argument("--bodies", type=parse_bodies, default=list(BODIES),
                        help="comma-separated (default: %(default)s); views of other bodies are left out")
    add_real_data_arguments(parser, "where --output-dir defaults to real-musicnn/")
    args = parser.parse_args(argv)

    import tensorflow_transform as tft

    from bench.training import prepare
    from models import preprocessing

    output_dir = Path(args.output_dir or Path(args.output_root) / "real-musicnn").resolve()
    graph_uri, examples_uri = prepare("musicnn", output_dir, args.data_root, args.split_dir,
                                      output_dir / "bodies-prepare.log")
    config = PipelineConfig().with_model("musicnn")
    tft_output = tft.TFTransformOutput(graph_uri)
    stats = preprocessing.normalisation_stats(tft_output, config)
    files = {split: os.path.join(examples_uri, f"Split-{split}", "*") for split in SPLITS}
    # "recordings": these caches hold the recorded segments only (recordings_only), never a training view's.
    cache = output_dir / "bodies-cache" / Path(examples_uri).name / "recordings"
    builders = body_models((stats.mean, stats.std))
    outputs, seconds = {}, {}
    for name in args.bodies:
        print(f"[bodies] {name}: embedding the train and eval segments (cached in {cache})", flush=True)
        outputs[name], seconds[name] = cached_embeddings(
            cache, name, lambda: embed_splits(builders[name](), files, tft_output, config))
    rows = []
    for view in VIEWS:
        if not view.bodies() <= set(outputs):
            continue
        for strength in STRENGTHS:
            row = score_view(view, outputs, strength, sum(seconds[b] for b in view.bodies()))
            rows.append(row)
            print(f"[bodies] {view.name}: C={strength:g} eval segment {row.eval_segment:.3f}, clip {row.eval_clip:.3f}; "
                  f"folds {row.fold_vote}/{row.fold_clips} (vote), {row.fold_clip_probe}/{row.fold_clips} "
                  "(clip-level probe)", flush=True)
    evaluation = outputs[args.bodies[0]]["eval"]
    body = report(rows, len(np.unique(evaluation.track_ids)), len(evaluation.labels), examples_uri)
    print(body)
    if not args.no_write:
        write_section("pretrained-bodies", "Pretrained bodies compared: linear probes on frozen embeddings "
                      "(eval split and folds of train + eval)", body,
                      COMMAND + (f' ARGS="{" ".join(argv)}"' if argv else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
