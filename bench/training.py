"""Training throughput per model family, and the tf.data input pipeline alone, in segments per second.

    python -m bench.training [--models cnn,lstm,vgg] [--batch-size 32]      (make bench-training)

Input: a Transform output per family (the families read different features: CNN the
22050 Hz log-mel, LSTM the MFCC, VGG musicnn's 16 kHz log-mel). The benchmark reads the
newest one from ``<output-root>/real-<model>/metadata.sqlite``, the pipeline roots that
``make bench-accuracy`` uses; when there is none it first runs
``local_runner.py --until train --max-steps 1`` on the real GTZAN clips (lists-trainval
split) into that folder, which leaves the ExampleGen and Transform outputs cached for
``bench.accuracy``. Only the ``train`` split's transformed examples are read.

For each family, in one process, on the same machine, with the same batch size:

* input pipeline: ``models.training.make_dataset(..., training=True)`` with the trainer's
  augmentation (random gain, SpecAugment), iterated with no model, over the split's canonical
  shards (written first, as the trainer writes them). One warm-up epoch, then ``--epochs``
  timed epochs.
* training: ``model.fit`` on that same dataset, model and optimiser exactly as
  ``models.training.fit`` builds and compiles them. ``--warmup-steps`` steps first
  (tracing), then ``--epochs`` timed full epochs with no validation. VGG in
  the trainer's phases: the frozen body's one embedding pass over the un-augmented train
  split, epochs of the head on those embeddings, and fine-tuning of the whole network.

The input pipeline must outrun the model by at least 3x (``RATIO_GOAL``), or training would
wait for data. The machine's cores are shared with other jobs: the load average is reported
with the figures.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Optional  # noqa: E402

from bench.real_data import add_real_data_arguments, parse_models  # noqa: E402
from bench.report import write_section  # noqa: E402
from pipeline.config import MODEL_TYPES, PROJECT_ROOT, PipelineConfig  # noqa: E402

RATIO_GOAL = 3.0


@dataclasses.dataclass
class Rate:
    segments: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.segments / self.seconds if self.seconds > 0 else float("nan")


# ----- measurement (no TFX here, so the tests can drive it with a toy dataset and model) -----

def time_input_pipeline(make_ds: Callable[[], "object"], epochs: int) -> tuple[Rate, Rate]:
    """(warm-up epoch, timed epochs): iterate a fresh ``make_ds()`` with no model, counting segments."""
    ds = make_ds()

    def one_pass() -> Rate:
        n, started = 0, time.perf_counter()
        for batch in ds:
            n += int(batch[0].shape[0])
        return Rate(n, time.perf_counter() - started)

    warmup = one_pass()
    timed = [one_pass() for _ in range(epochs)]
    return warmup, Rate(sum(r.segments for r in timed), sum(r.seconds for r in timed))


class _EpochTimer:
    """Keras callback factory: wall time of each epoch."""

    @staticmethod
    def make():
        import tf_keras as keras

        class EpochTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []
                self._started = 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self._started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._started)

        return EpochTimer()


def time_fit(model, ds, segments_per_epoch: int, epochs: int, warmup_steps: int) -> tuple[float, Rate]:
    """(warm-up seconds, timed rate): ``warmup_steps`` of fit, then ``epochs`` full epochs of fit.

    ``model`` must be compiled. Each epoch is timed by a callback, from its first step to its
    last (no validation), so Keras's per-call set-up is not counted.
    """
    started = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=warmup_steps, verbose=0)
    warmup = time.perf_counter() - started
    timer = _EpochTimer.make()
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[timer])
    return warmup, Rate(segments_per_epoch * epochs, sum(timer.seconds))


# ----- the real data -------------------------------------------------------------------------

def transform_outputs(output_dir: Path) -> Optional[tuple[str, str]]:
    """(transform graph uri, transformed examples uri) of the newest Transform run, or None."""
    metadata = output_dir / "metadata.sqlite"
    if not metadata.exists():
        return None
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.run_record import open_store

    store = open_store(str(metadata))

    def newest(type_name: str):  # outputs of a successful Transform run only (a failed one leaves no LIVE artifact)
        found = [a for a in store.get_artifacts_by_type(type_name)
                 if "/Transform/" in a.uri and a.state == metadata_store_pb2.Artifact.LIVE and os.path.isdir(a.uri)]
        return max(found, key=lambda a: a.id) if found else None

    graph, examples = newest("TransformGraph"), newest("Examples")
    return (graph.uri, examples.uri) if graph and examples else None


def prepare(model: str, output_dir: Path, data_root: str, split_dir: str, log_path: Path) -> tuple[str, str]:
    """The Transform output for ``model``'s features; runs the pipeline up to training if there is none."""
    found = transform_outputs(output_dir)
    if found:
        return found
    command = [sys.executable, str(PROJECT_ROOT / "local_runner.py"), "--data-root", data_root,
               "--split", "lists-trainval", "--split-dir", split_dir, "--model", model,
               "--output-dir", str(output_dir), "--until", "train", "--max-steps", "1"]
    print(f"[bench] no Transform output in {output_dir}: running {' '.join(command[1:])} (log: {log_path})",
          flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                       env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    found = transform_outputs(output_dir)
    if not found:
        raise SystemExit(f"The pipeline run left no Transform output in {output_dir}; see {log_path}.")
    return found


def measure(model_name: str, graph_uri: str, examples_uri: str, batch_size: int, epochs: int,
            warmup_steps: int) -> dict:
    """Input pipeline alone and each training phase of one family, as ``models.training.fit`` runs them;
    the train split's canonical shards and the embeddings go to a temporary folder, removed after."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        return _measure(model_name, graph_uri, examples_uri, batch_size, epochs, warmup_steps, scratch)


def _measure(model_name: str, graph_uri: str, examples_uri: str, batch_size: int, epochs: int,
             warmup_steps: int, scratch: str) -> dict:
    import tensorflow_transform as tft
    import tf_keras as keras

    from models import augment, canonical_order, embeddings, preprocessing, registry, training

    config = PipelineConfig().with_model(model_name)
    config.train = dataclasses.replace(config.train, batch_size=batch_size)
    keras.utils.set_random_seed(config.train.seed)
    tft_output = tft.TFTransformOutput(graph_uri)
    stats = preprocessing.normalisation_stats(tft_output, config)
    gain = augment.gain_scale(config.features, stats.std)
    shards = canonical_order.write_shards(os.path.join(examples_uri, "Split-train", "*"), tft_output,
                                          os.path.join(scratch, "train"))

    def make_ds(train: bool = True):
        return training.make_dataset(shards, tft_output, config, training=train, gain_per_db=gain if train else None)

    def trainable(model) -> int:
        return sum(int(keras.backend.count_params(w)) for w in model.trainable_weights)

    shape = training.input_shape(tft_output, config.features.kind)
    input_epochs = max(epochs, 10)
    input_warmup, input_rate = time_input_pipeline(make_ds, epochs=input_epochs)
    segments = input_warmup.segments
    print(f"[bench] {model_name}: input pipeline {input_rate.per_second:,.0f} segments/s "
          f"({segments} train segments, {config.features.kind} {shape})", flush=True)
    aug = "augmented"
    model = registry.build_model(config, shape, input_stats=(stats.mean, stats.std))
    fits = []
    if registry.has_pretrained_backbone(config):
        # Phase 1 as the trainer runs it: the frozen body embeds the un-augmented train split once,
        # then the head trains on those embeddings streamed from disk (training.fit_heads_on_embeddings).
        plain_warmup, plain_rate = time_input_pipeline(lambda: make_ds(False), epochs=input_epochs)
        body, head = registry.split_backbone(model)
        probe = make_ds(False)
        for x, _ in probe.take(1):
            body(x, training=False)  # first call builds the body's functions; not part of the pass
        started = time.perf_counter()
        embedded = embeddings.embed(body, probe, os.path.join(scratch, "embeddings", "train.tfrecord"))
        embed_rate = Rate(segments, time.perf_counter() - started)
        fits.append({"label": " phase 1a: frozen body embeds the train split (once)", "rate": embed_rate,
                     "trainable": 0, "input": plain_rate, "input_label": "un-augmented"})
        print(f"[bench] {model_name}: embedding pass {embed_rate.per_second:,.1f} segments/s", flush=True)
        head_ds = embedded.shuffle(training.SHUFFLE_BUFFER, seed=config.train.seed).batch(batch_size)
        training._compile(head, config.train.learning_rate)
        _, head_rate = time_fit(head, head_ds, segments, epochs, warmup_steps)
        fits.append({"label": " phase 1b: head on embeddings (per epoch)", "rate": head_rate,
                     "trainable": trainable(head), "input": None, "input_label": "embeddings on disk"})
        print(f"[bench] {model_name}: head {head_rate.per_second:,.0f} segments/s", flush=True)
        registry.set_backbone_trainable(model, True)
        training._compile(model, config.train.finetune_learning_rate)
        label = " phase 2: fine-tuning (per epoch)"
    else:
        training._compile(model, config.train.learning_rate)  # the trainer's own compile
        label = ""
    _, rate = time_fit(model, make_ds(), segments, epochs, warmup_steps)
    fits.append({"label": label, "rate": rate, "trainable": trainable(model), "input": input_rate,
                 "input_label": aug})
    print(f"[bench] {model_name}{label}: fit {rate.per_second:,.1f} segments/s "
          f"({rate.segments} segments in {rate.seconds:.1f} s)", flush=True)
    return {"model": model_name, "kind": config.features.kind, "shape": shape, "segments": segments,
            "params": model.count_params(), "input_warmup": input_warmup, "input": input_rate, "fits": fits,
            "sample_rate": config.audio.sample_rate}


def format_rows(results: list[dict]) -> tuple[str, list[float]]:
    """Markdown rows, and the input/fit ratios of the phases that read the tf.data pipeline."""
    rows, ratios = [], []
    for r in results:
        for fit in r["fits"]:
            feed = fit.get("input", r["input"])
            if feed is None:
                feed_text, ratio_text = f"- ({fit['input_label']})", "-"
            else:
                ratio = feed.per_second / fit["rate"].per_second
                ratios.append(ratio)
                feed_text = (f"**{feed.per_second:,.0f}** ({fit.get('input_label', 'augmented')}; {feed.segments} in "
                             f"{feed.seconds:.2f} s)")
                ratio_text = f"**{ratio:,.0f}x** {'(>= 3x: met)' if ratio >= RATIO_GOAL else '(< 3x: NOT met)'}"
            rows.append(
                f"| {r['model']}{fit['label']} | {r['kind']} {r['shape'][0]}x{r['shape'][1]} "
                f"({r['sample_rate']} Hz) | {r['params']:,} ({fit['trainable']:,} trainable) | "
                f"**{fit['rate'].per_second:,.1f}** ({fit['rate'].segments} in {fit['rate'].seconds:.1f} s) | "
                f"{feed_text} | {ratio_text} |")
    return "\n".join(rows), ratios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODEL_TYPES), help="comma-separated (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=PipelineConfig().train.batch_size,
                        help="(default: the trainer's, %(default)s)")
    parser.add_argument("--epochs", type=int, default=2,
                        help="timed full epochs of fit per model/phase (default: %(default)s); the input "
                             "pipeline alone is timed over max(epochs, 10)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="fit steps before timing (default: %(default)s)")
    add_real_data_arguments(parser, "holds real-<model>/ pipeline roots")
    args = parser.parse_args(argv)
    models = parse_models(args.models)

    output_root = Path(args.output_root)
    sources = {m: prepare(m, output_root / f"real-{m}", args.data_root, args.split_dir,
                          output_root / "bench-logs" / f"prepare-{m}.log") for m in models}
    import tensorflow as tf

    load_before = os.getloadavg()
    results = []
    for m in models:
        graph_uri, examples_uri = sources[m]
        results.append(measure(m, graph_uri, examples_uri, args.batch_size, args.epochs, args.warmup_steps))
    load_after = os.getloadavg()

    rows, ratios = format_rows(results)
    warmups = "; ".join(f"{r['model']} {r['input_warmup'].per_second:,.0f}" for r in results)
    sources_text = "\n".join(f"- {m}: `{shown_path(sources[m][1])}`" for m in models)
    slowest_cold = min(r["input_warmup"].per_second / max(f["rate"].per_second for f in r["fits"]
                                                           if f.get("input") is not None) for r in results)
    command = "make bench-training" + (f' ARGS="{" ".join(argv)}"' if argv else "")
    body = f"""
Data: the `train` split of the real GTZAN clips' Transform output (protocol lists-trainval, 254 clips of the
fault-filtered train+valid lists in `{args.data_root}`; 3 s segments), one Transform output per family
because each reads its own features:
{sources_text}

Batch size {args.batch_size} for both measurements; TensorFlow {tf.__version__} on CPU, default thread pools.
Input pipeline: `models.training.make_dataset(train shards, training=True)` with the trainer's augmentation
(random gain {PipelineConfig().train.random_gain_db:g} dB, SpecAugment), iterated with no model for
{max(args.epochs, 10)} epochs after one warm-up epoch (warm-up epoch, segments/s: {warmups}); the split's
canonical shards (`models/canonical_order.py`) are written before either.
Training: `model.fit` on the same dataset with the trainer's model, optimiser and loss (`models.training._compile`),
{args.warmup_steps} warm-up steps, then {args.epochs} timed full epoch(s) without validation, each epoch timed from
its first to its last step. VGG is measured in the trainer's phases (`models.training.fit`): 1a, the frozen body
embeds the un-augmented train split once (compared with the un-augmented input pipeline, timed alone like the
augmented one); 1b, the head trains on those embeddings, streamed from a file (no tf.data input to compare with); 2, the
whole network is fine-tuned (batch norm kept frozen) on the augmented pipeline.
Load average (1/5/15 min) before: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f},
after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} (2 cores shared with other jobs).

| model | input | parameters | fit: segments/s | input pipeline alone: segments/s | input / fit |
|---|---|---|---|---|---|
{rows}

Smallest input/fit ratio: **{min(ratios):,.0f}x** (goal: at least {RATIO_GOAL:g}x:
{'met for every family' if min(ratios) >= RATIO_GOAL else 'NOT met for every family'}). The input pipeline
was timed alone, so it had both cores; during `fit` it shares them with the model: at a ratio of R it needs
about 1/R of the machine to keep the model fed. The first epoch (the shards' first read,
after they were written) ran at {slowest_cold:.1f}x or more of the fastest fit of its family.
"""
    print(body)
    if not args.no_write:
        write_section("training", "Training throughput: model.fit vs the tf.data input pipeline", body,
                      command=command)


def shown_path(path: str) -> str:
    """Relative to the project when inside it, else absolute."""
    rel = os.path.relpath(path, PROJECT_ROOT)
    return path if rel.startswith("..") else rel


if __name__ == "__main__":
    main(sys.argv[1:])
