"""Which pretrained body separates the genres best: a linear probe on frozen embeddings, eval split only.

    python -m bench.pretrained_bodies [--output-dir /tmp/genre-bench288/real-musicnn]      (make bench-bodies)

For each body that ships in the musicnn wheel, as this project loads it (models/vgg.py, models/musicnn.py:
tf_keras ports checked against musicnn's TF1 graphs), embeds every 3-s segment of the ``train`` and ``eval``
splits of a pipeline root's Transform output (16-kHz musicnn features; the pipeline is run up to a one-step
Trainer first if the root has none), fits a standardised multinomial logistic regression on ``train`` at a few
regularisation strengths, and scores ``eval``: segment accuracy and clip accuracy (soft vote over a clip's
segments). The ``test`` split is never embedded: this benchmark chooses, and choosing uses eval only.

Embeddings: MSD_vgg's and MTT_vgg's pool5 flattened (256, the VGG family's head input), the mean over time and
frequency of each of their five blocks (5 x 128), and MSD_musicnn's / MTT_musicnn's mean over time of the mid end
(753, the musicnn family's head input): every checkpoint the wheel ships.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from bench.real_data import add_real_data_arguments  # noqa: E402
from bench.report import write_section  # noqa: E402
from pipeline.config import GENRES, PipelineConfig  # noqa: E402

SPLITS = ("train", "eval")
STRENGTHS = (0.003, 0.01, 0.1, 1.0)  # inverse L2 strength C of the logistic regression
COMMAND = "make bench-bodies"


def body_models(input_stats) -> dict[str, Callable]:
    """Name -> builder of a Keras model from the (z-scored) transformed input to one embedding."""
    import tf_keras as keras

    from models import musicnn, vgg

    def vgg_model(checkpoint: str):
        return vgg.build_vgg((vgg.FRAMES, vgg.MELS), len(GENRES), None, input_stats=input_stats, checkpoint=checkpoint)

    def vgg_pool5(checkpoint: str):
        def build():
            model = vgg_model(checkpoint)
            return keras.Model(model.input, model.get_layer("head_flatten").output)
        return build

    def vgg_block_means(checkpoint: str):
        def build():
            model = vgg_model(checkpoint)
            means = [keras.layers.GlobalAveragePooling2D()(model.get_layer(f"{vgg.BACKBONE_PREFIX}block{i}_bn").output)
                     for i in range(1, len(vgg.POOLS) + 1)]
            return keras.Model(model.input, keras.layers.Concatenate()(means))
        return build

    def musicnn_mean_pool(checkpoint: str):
        def build():
            model = musicnn.build_musicnn((musicnn.FRAMES, musicnn.MELS), len(GENRES), None, input_stats=input_stats,
                                          checkpoint=checkpoint)
            return keras.Model(model.input, model.get_layer(musicnn.EMBEDDING).output)
        return build

    return {"MSD_vgg pool5 (256)": vgg_pool5("MSD_vgg"), "MSD_vgg block means (640)": vgg_block_means("MSD_vgg"),
            "MSD_musicnn mean_pool (753)": musicnn_mean_pool("MSD_musicnn"),
            "MTT_musicnn mean_pool (753)": musicnn_mean_pool("MTT_musicnn"),
            "MTT_vgg pool5 (256)": vgg_pool5("MTT_vgg"), "MTT_vgg block means (640)": vgg_block_means("MTT_vgg")}


def embed_splits(body, files: dict[str, str], tft_output, config: PipelineConfig) -> dict[str, tuple]:
    """split -> (embeddings, labels, track ids) over every segment of the split, in file order."""
    from models import training

    return {split: training.predict_split(body, training.make_dataset(files[split], tft_output, config,
                                                                       training=False, with_track_ids=True))
            for split in SPLITS}


def probe(data: dict[str, tuple], strength: float) -> tuple[float, float]:
    """(eval segment accuracy, eval clip accuracy) of a logistic regression fitted on train."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models import metrics

    (x_train, y_train, _), (x_eval, y_eval, t_eval) = data["train"], data["eval"]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=3000,
                                                                    class_weight="balanced"))
    classifier.fit(x_train, y_train)
    probs = np.zeros((len(x_eval), len(GENRES)), np.float32)
    probs[:, classifier.classes_] = classifier.predict_proba(x_eval)
    return float((probs.argmax(axis=1) == y_eval).mean()), metrics.score(t_eval, probs, y_eval).clip_accuracy


def report(rows: list[tuple[str, float, float, float, float]], clips: int, segments: int, source: str) -> str:
    lines = [f"Transform output: `{source}`. Eval split: {clips} clips, {segments} segments (lists-trainval: "
             "artist-disjoint from train where a genre has clips in both lists). Linear probe: standardised "
             "multinomial logistic regression, class-balanced, fitted on the train split's segments.", "",
             "| body, embedding | C | eval segment accuracy | eval clip accuracy (soft vote) | embedding s |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {c:g} | {seg:.3f} | {clip:.3f} | {seconds:.0f} |" for name, c, seg, clip, seconds in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pretrained_bodies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="", help="pipeline root with a musicnn-feature Transform output "
                        "(default: <output-root>/real-musicnn)")
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
    rows, data = [], {}
    for name, build in body_models((stats.mean, stats.std)).items():
        started = time.time()
        data = embed_splits(build(), files, tft_output, config)
        seconds = time.time() - started
        for strength in STRENGTHS:
            segment, clip = probe(data, strength)
            rows.append((name, strength, segment, clip, seconds))
            print(f"[bodies] {name}: C={strength:g} eval segment {segment:.3f}, clip {clip:.3f} "
                  f"(embedding {seconds:.0f} s)", flush=True)
    _, labels, tracks = data["eval"]
    body = report(rows, len(np.unique(tracks)), len(labels), examples_uri)
    print(body)
    if not args.no_write:
        write_section("pretrained-bodies", "Pretrained bodies compared: linear probe on frozen embeddings (eval split)",
                      body, COMMAND + (f' ARGS="{" ".join(argv)}"' if argv else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
