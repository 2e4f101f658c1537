"""How long saving and loading a family's SavedModel takes, with and without Keras' traced call functions.

models/signatures.export saves with ``save_traces=False``: every consumer calls the exported signatures or
rebuilds the layers from their configs. This measures what that saves per family and checks that Keras'
reload still predicts what the model predicts.

    make bench-export                    # every family; writes its section of BENCHMARKS.md
    make bench-export ARGS="--models cnn,lstm --no-write"
"""
from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench.real_data import parse_models  # noqa: E402
from bench.report import add_no_write, make_command, publish, timed  # noqa: E402
from config.settings import MODEL_TYPES, PipelineConfig  # noqa: E402
from models import features, registry  # noqa: E402


def measure(family: str) -> dict:
    """Seconds to save, to load with tf.saved_model.load and to reload with Keras, both ways, for one family."""
    config = PipelineConfig().with_model(family)
    shape = features.output_shape(config.features, config.audio.segment_samples)
    stats = (np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32))
    model = registry.build_model(config, shape, input_stats=stats)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    expected = model(x, training=False).numpy()
    row = {"family": family, "parameters": model.count_params()}
    for traces in (True, False):
        with tempfile.TemporaryDirectory() as path:
            row[f"save_{traces}"] = timed(lambda: model.save(path, save_format="tf", save_traces=traces))[1]["wall"]
            row[f"tf_load_{traces}"] = timed(lambda: tf.saved_model.load(path))[1]["wall"]
            reloaded, took = timed(lambda: keras.models.load_model(path, compile=False))
            row[f"keras_load_{traces}"] = took["wall"]
            row[f"max_diff_{traces}"] = float(np.max(np.abs(reloaded(x, training=False).numpy() - expected)))
            row[f"megabytes_{traces}"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path)
                                             for f in fs) / 1e6
        print(f"[bench] {family} save_traces={traces}: save {row[f'save_{traces}']:.1f} s, "
              f"tf.saved_model.load {row[f'tf_load_{traces}']:.1f} s, "
              f"Keras reload {row[f'keras_load_{traces}']:.1f} s, {row[f'megabytes_{traces}']:.1f} MB, "
              f"reload differs by {row[f'max_diff_{traces}']:.1e}", flush=True)
    keras.backend.clear_session()
    return row


def table(rows: list[dict]) -> str:
    lines = ["| family | parameters | save: traces / none (s) | tf.saved_model.load: traces / none (s) | "
             "Keras reload: traces / none (s) | size: traces / none (MB) | reload's largest difference, none |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        timed = " | ".join(f"{r[f'{m}_True']:.1f} / **{r[f'{m}_False']:.1f}**"
                           for m in ("save", "tf_load", "keras_load"))
        lines.append(f"| {r['family']} | {r['parameters']:,} | {timed} | {r['megabytes_True']:.1f} / "
                     f"{r['megabytes_False']:.1f} | {r['max_diff_False']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODEL_TYPES), help="comma-separated (default: %(default)s)")
    add_no_write(parser)
    args = parser.parse_args(argv)
    rows = [measure(family) for family in parse_models(args.models)]
    body = table(rows) + (
        "\n\nEach family as its preset builds it (EfficientNet from random initialisation where ImageNet weights "
        "cannot be fetched), one process, one run per cell. **traces**: Keras' default, every layer's call "
        "functions traced into the SavedModel; **none**: `save_traces=False`, what `models/signatures.export` "
        "does. The exported signatures are traced either way and are not in these figures.")
    chosen = [] if args.models == parser.get_default("models") else ["--models", args.models]
    publish(body, not args.no_write, "export", "Exporting the SavedModel: Keras' traced call functions or none",
            make_command("bench-export", chosen))


if __name__ == "__main__":
    main()
