"""Training throughput per model family, and the tf.data input pipeline alone, in segments per second.

    python -m bench.training [--models cnn,lstm,vgg] [--batch-size 32]      (make bench-training)
    python -m bench.training --input-only [--models cnn] [--cores 1,2]     (make bench-input)

Input: each family's newest Transform output under ``<output-root>/real-<model>/`` (the roots ``make accuracy``
uses; ``--pipeline-output DIR`` instead), made first with ``local_runner.py --until train --max-steps 1`` where
missing; only the ``train`` split is read. Per family, at one batch size: the trainer's augmented input pipeline with
no model, and ``model.fit`` on it with the model and optimiser exactly as ``models.training.fit`` builds them (VGG in
the trainer's phases). The input pipeline must outrun the model by ``RATIO_GOAL``, or training would wait for data.

``--input-only`` sizes the CPU workers that feed an accelerator and profiles an epoch of the trainer on the synthetic
default set. Each measurement runs in a child process of its own, so that its cores, thread pools and oneDNN
instruction set are fixed before TensorFlow starts: the input pipeline and ``fit`` pinned to 1, 2, ... cores, and
each stage (read + parse, augmentation, the model's ops, the real fit) with default and explicit threads, oneDNN
uncapped and capped at AVX2.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Optional  # noqa: E402

from bench.real_data import add_real_data_arguments, parse_models  # noqa: E402
from bench.report import child_env, load_text, make_command, publish  # noqa: E402
from config.settings import MODEL_TYPES, PROJECT_ROOT, PipelineConfig  # noqa: E402

RATIO_GOAL = 3.0
# The section each mode writes, by --input-only: (name, title, make target).
SECTIONS = {False: ("training", "Training throughput: model.fit vs the tf.data input pipeline", "bench-training"),
            True: ("training-input", "Input pipeline per core, and where the trainer's epoch goes", "bench-input")}


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
        started = time.perf_counter()
        return Rate(sum(int(batch[0].shape[0]) for batch in ds), time.perf_counter() - started)

    warmup = one_pass()
    timed = [one_pass() for _ in range(epochs)]
    return warmup, Rate(sum(r.segments for r in timed), sum(r.seconds for r in timed))


def time_fit(model, ds, segments_per_epoch: int, epochs: int, warmup_steps: int,
             steps_per_epoch: Optional[int] = None) -> tuple[float, Rate]:
    """(warm-up seconds, timed rate) of a compiled MODEL: WARMUP_STEPS of fit, then EPOCHS epochs, each timed by a
    callback from its first to its last step (Keras's set-up not counted); STEPS_PER_EPOCH for an endless DS."""
    import tf_keras as keras

    started = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=warmup_steps, verbose=0)
    warmup = time.perf_counter() - started
    begun, seconds = [], []
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: begun.append(time.perf_counter()),
                                           on_epoch_end=lambda *_: seconds.append(time.perf_counter() - begun[-1]))
    model.fit(ds, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0, callbacks=[timer])
    return warmup, Rate(segments_per_epoch * epochs, sum(seconds))


# ----- the real data, and one family's trainer settings on it -----

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


def prepare(model: str, output_dir: Path, data_args: list[str], log_path: Path) -> tuple[str, str]:
    """The Transform output in OUTPUT_DIR, first running local_runner.py there up to a one-step Trainer if none."""
    if found := transform_outputs(output_dir):
        return found
    command = [sys.executable, str(PROJECT_ROOT / "local_runner.py"), *data_args, "--model", model,
               "--output-dir", str(output_dir), "--until", "train", "--max-steps", "1"]
    print(f"[bench] no Transform output in {output_dir}: running {' '.join(command[1:])} (log: {log_path})", flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=child_env())
    if not (found := transform_outputs(output_dir)):
        raise SystemExit(f"The pipeline run left no Transform output in {output_dir}; see {log_path}.")
    return found


@dataclasses.dataclass
class Family:
    """One family's trainer settings on one Transform output: what its input pipeline and model are built from."""

    config: PipelineConfig
    tft_output: object
    stats: object  # preprocessing.normalisation_stats
    gain: object  # augment.gain_scale, [bins]
    shape: tuple[int, int]

    def train_shards(self, examples_uri: str, scratch: str):
        """The train split of EXAMPLES_URI as canonical shards under SCRATCH, which every measurement reads."""
        from models import canonical_order

        return canonical_order.write_shards(os.path.join(examples_uri, "Split-train", "*"), self.tft_output,
                                            os.path.join(scratch, "train"))

    def dataset(self, shards, augmented: bool = True):
        """The trainer's dataset (``augmented``: shuffled and augmented) over canonical shards."""
        from models import training

        return training.make_dataset(shards, self.tft_output, self.config, training=augmented,
                                     gain_per_db=self.gain if augmented else None)

    def compiled_model(self):
        """The family's model, compiled as the trainer compiles it (for VGG: before its phases)."""
        from models import registry, training

        model = registry.build_model(self.config, self.shape, input_stats=(self.stats.mean, self.stats.std))
        training.compile_model(model, self.config.train.learning_rate, self.config.train.label_smoothing)
        return model


def load_family(model_name: str, graph_uri: str, batch_size: int) -> Family:
    """The trainer's config (with ``batch_size``), seeds, Transform statistics and input shape."""
    import tensorflow_transform as tft
    import tf_keras as keras

    from models import augment, preprocessing, training

    config = PipelineConfig().with_model(model_name)
    config.train = dataclasses.replace(config.train, batch_size=batch_size)
    keras.utils.set_random_seed(config.train.seed)
    tft_output = tft.TFTransformOutput(graph_uri)
    if config.features.kind not in tft_output.transformed_feature_spec():
        raise SystemExit(f"The Transform output {graph_uri} holds no {config.features.kind!r} feature, which "
                         f"{model_name} reads: give a --pipeline-output whose run used --model {model_name}.")
    stats = preprocessing.normalisation_stats(tft_output, config)
    return Family(config, tft_output, stats, augment.gain_scale(config.features, stats.std),
                  training.input_shape(tft_output, config.features.kind))


# ----- the throughput table: each family's fit against its input pipeline, in this process -----

def measure(model_name: str, graph_uri: str, examples_uri: str, batch_size: int, epochs: int,
            warmup_steps: int) -> dict:
    """Input pipeline alone and each training phase of one family, as ``models.training.fit`` runs them."""
    from models import embeddings, registry, training

    def trainable(model) -> int:
        return sum(w.shape.num_elements() for w in model.trainable_weights)

    family = load_family(model_name, graph_uri, batch_size)
    config, shape = family.config, family.shape
    with tempfile.TemporaryDirectory() as scratch:
        shards = family.train_shards(examples_uri, scratch)
        input_warmup, input_rate = time_input_pipeline(lambda: family.dataset(shards), epochs=max(epochs, 10))
        segments = input_warmup.segments
        print(f"[bench] {model_name}: input pipeline {input_rate.per_second:,.0f} segments/s "
              f"({segments} train segments, {config.features.kind} {shape})", flush=True)
        model, fits, label = family.compiled_model(), [], ""
        if registry.has_pretrained_backbone(config):
            # Phase 1 as the trainer runs it: the frozen body embeds the un-augmented train split once,
            # then the head trains on those embeddings streamed from disk (training.fit_heads_on_embeddings).
            _, plain_rate = time_input_pipeline(lambda: family.dataset(shards, False), epochs=max(epochs, 10))
            body, head = registry.split_backbone(model)
            probe = family.dataset(shards, False)
            for x, _ in probe.take(1):
                body(x, training=False)  # first call builds the body's functions; not part of the pass
            started = time.perf_counter()
            embedded = embeddings.embed(body, probe, os.path.join(scratch, "embeddings", "train.tfrecord"))
            embed_rate = Rate(segments, time.perf_counter() - started)
            fits.append({"label": " phase 1a: frozen body embeds the train split (once)", "rate": embed_rate,
                         "trainable": 0, "input": plain_rate, "input_label": "un-augmented"})
            print(f"[bench] {model_name}: embedding pass {embed_rate.per_second:,.1f} segments/s", flush=True)
            head_ds = embedded.shuffle(training.SHUFFLE_BUFFER, seed=config.train.seed).batch(batch_size)
            training.compile_model(head, config.train.learning_rate, config.train.label_smoothing)
            _, head_rate = time_fit(head, head_ds, segments, epochs, warmup_steps)
            fits.append({"label": " phase 1b: head on embeddings (per epoch)", "rate": head_rate,
                         "trainable": trainable(head), "input": None, "input_label": "embeddings on disk"})
            print(f"[bench] {model_name}: head {head_rate.per_second:,.0f} segments/s", flush=True)
            registry.set_backbone_trainable(model, True)
            training.compile_model(model, config.train.finetune_learning_rate, config.train.label_smoothing)
            label = " phase 2: fine-tuning (per epoch)"
        _, rate = time_fit(model, family.dataset(shards), segments, epochs, warmup_steps)
    fits.append({"label": label, "rate": rate, "trainable": trainable(model), "input": input_rate,
                 "input_label": "augmented"})
    print(f"[bench] {model_name}{label}: fit {rate.per_second:,.1f} segments/s "
          f"({rate.segments} segments in {rate.seconds:.1f} s)", flush=True)
    return {"model": model_name, "kind": config.features.kind, "shape": shape, "params": model.count_params(),
            "input_warmup": input_warmup, "input": input_rate, "fits": fits, "sample_rate": config.audio.sample_rate}


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


# ----- --input-only: input cores per accelerator, and the trainer's step profile (one child process each) -----

ISA_CAP = "AVX2"  # what ONEDNN_MAX_CPU_ISA caps oneDNN at, to imitate an AVX2-only machine
RESULT_MARK = "[bench-probe] "
PROFILE_STAGES = {
    "parse": "(a) read + parse (no shuffle, no augmentation)",
    "augment": "(b) the trainer's input pipeline: read + shuffle + parse + augmentation",
    "model": "(c) model only: `fit` on one in-memory batch repeated",
    "fit": "(d) the real `fit` on (b)",
}
ACCELERATOR_RATES = (1_000, 5_000, 20_000)  # examples/s, for the worked examples of cores_needed


@dataclasses.dataclass(frozen=True)
class Probe:
    """One measurement and its process: WHAT (a PROFILE_STAGES key or "augment-ops"), TensorFlow's threads, oneDNN's
    instruction-set cap (None: the machine's best) and the cores it is pinned to (None: every core)."""

    what: str
    threads: str = "default"
    isa: Optional[str] = None
    cores: Optional[int] = None

    @property
    def setting(self) -> str:
        """The column a profile figure goes in, e.g. "uncapped, default threads"."""
        return f"{'oneDNN ' + self.isa if self.isa else 'uncapped'}, {self.threads} threads"


@dataclasses.dataclass(frozen=True)
class Source:
    """What every child process reads: a family's Transform graph and its train split's canonical shards."""

    model: str
    graph_uri: str
    shards: tuple[str, ...]
    segments: int
    batch_size: int
    epochs: int
    warmup_steps: int

    @property
    def steps(self) -> int:
        """Steps of one epoch of ``fit`` (the last batch may be partial)."""
        return math.ceil(self.segments / self.batch_size)


def pinned_cpus(cores: int, available: set[int]) -> list[int]:
    """The first ``cores`` of the CPUs this process may run on; refuses more than there are."""
    if not 1 <= cores <= len(available):
        raise SystemExit(f"--cores {cores}: this process may use {len(available)} CPU(s) ({sorted(available)}).")
    return sorted(available)[:cores]


def child_command(probe: Probe, source: Source, available: set[int]) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of PROBE's child: pinned by ``taskset``, ONEDNN_MAX_CPU_ISA set or removed before TF loads."""
    payload = json.dumps({"probe": dataclasses.asdict(probe), "source": dataclasses.asdict(source)})
    argv = [sys.executable, "-m", "bench.training", "--probe", payload]
    if probe.cores is not None:
        argv = ["taskset", "-c", ",".join(map(str, pinned_cpus(probe.cores, available)))] + argv
    env = {k: v for k, v in child_env().items() if k != "ONEDNN_MAX_CPU_ISA"}
    return argv, ({**env, "ONEDNN_MAX_CPU_ISA": probe.isa} if probe.isa else env)


def parse_result(stdout: str) -> dict:
    """The child's result: the JSON on its last line that starts with RESULT_MARK."""
    found = [line[len(RESULT_MARK):] for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not found:
        raise ValueError("the child process printed no result line")
    return json.loads(found[-1])


def run_child(probe: Probe, source: Source, log_path: Path) -> dict:
    """Run ``probe`` in its own process (its output appended to ``log_path``) and return its result."""
    argv, env = child_command(probe, source, os.sched_getaffinity(0))
    completed = subprocess.run(argv, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    with open(log_path, "a") as log:
        log.write(f"$ {probe}\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        raise SystemExit(f"The measurement {probe} failed (exit {completed.returncode}); see {log_path}.")
    r = parse_result(completed.stdout)
    shown = (", ".join(f"{name} {ms:.2f} ms" for name, ms in r["ops"].items()) if "ops" in r else
             f"{examples_per_second(r):,.1f} examples/s ({r['examples']} in {r['seconds']:.2f} s)")
    print(f"[bench] {source.model} {probe.what}, {probe.setting}"
          f"{f', {probe.cores} core(s)' if probe.cores else ''}: {shown}", flush=True)
    return r


def examples_per_second(result: dict) -> float:
    return Rate(result["examples"], result["seconds"]).per_second


def ms_per_step(result: dict) -> float:
    return 1000.0 * result["seconds"] / result["steps"] if result["steps"] else float("nan")


def cores_needed(accelerator_rate: float, per_core_rate: float) -> int:
    """Input cores that deliver ``accelerator_rate`` examples/s at ``per_core_rate`` each (arithmetic: it
    assumes the rate grows linearly with the cores and that the accelerator host's cores are like these)."""
    if per_core_rate <= 0:
        raise ValueError(f"per-core rate {per_core_rate}: must be positive")
    return max(1, math.ceil(accelerator_rate / per_core_rate))


# ----- inside the child process -----

def run_probe(probe: Probe, source: Source) -> dict:
    """Measure ``probe`` in this process: thread pools first, before TensorFlow runs an op."""
    import tensorflow as tf

    from models.canonical_order import CanonicalShards

    cores = len(os.sched_getaffinity(0))
    options = tf.data.Options()
    if probe.threads == "explicit":
        tf.config.threading.set_intra_op_parallelism_threads(cores)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        options.threading.private_threadpool_size = cores
    family = load_family(source.model, source.graph_uri, source.batch_size)
    shards = CanonicalShards(source.shards)

    def dataset(augmented: bool):
        return family.dataset(shards, augmented).with_options(options)

    result = {"cores": cores, "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}
    epochs = source.epochs
    if probe.what == "augment-ops":
        x, y = next(iter(dataset(False)))
        return {**result, "ops": time_augment_ops(family, x, y)}
    if probe.what in ("parse", "augment"):
        epochs = max(source.epochs, 10)
        _, rate = time_input_pipeline(lambda: dataset(probe.what == "augment"), epochs=epochs)
    elif probe.what == "model":
        cached = tf.data.Dataset.from_tensors(next(iter(dataset(True)))).repeat()
        _, rate = time_fit(family.compiled_model(), cached, source.steps * source.batch_size, epochs,
                           source.warmup_steps, steps_per_epoch=source.steps)
    else:  # "fit"
        _, rate = time_fit(family.compiled_model(), dataset(True), source.segments, epochs, source.warmup_steps)
    return {**result, "examples": rate.segments, "seconds": rate.seconds, "steps": epochs * source.steps}


def time_augment_ops(family: Family, x, y, repeats: int = 50) -> dict[str, float]:
    """Milliseconds per batch of each augmentation op the trainer runs, and of augment_batch whole, traced first."""
    import tensorflow as tf

    from models import augment

    t = family.config.train
    seeds = augment.batch_seeds(x, t.seed, 9)
    gain = tf.constant(family.gain, tf.float32)
    ops = {"batch seeds (serialize + fingerprint the batch)": lambda f: augment.batch_seeds(f, t.seed, 9)}
    if t.random_gain_db > 0:
        ops["random gain"] = lambda f: augment.random_gain(f, t.random_gain_db, gain, seeds[0])
    if t.band_shift > 0:
        ops[f"band shift (up to {t.band_shift} bins)"] = lambda f: augment.band_shift(f, t.band_shift, seeds[8])
    if t.spec_augment:
        ops["SpecAugment (1 frequency + 1 time mask)"] = lambda f: augment.spec_augment(
            f, t.freq_mask_param, t.time_mask_param, seeds[1:5])
    if t.mixup_alpha > 0:
        ops["mixup"] = lambda f: augment.mixup(f, y, t.mixup_alpha, seeds[5:8])[0]
    ops["augment_batch (all of the above)"] = lambda f: augment.augment_batch(f, y, t, family.gain)[0]
    timings = {}
    for name, op in ops.items():
        fn = tf.function(op)
        for _ in range(3):
            fn(x).numpy()
        started = time.perf_counter()
        for _ in range(repeats):
            fn(x).numpy()
        timings[name] = 1000.0 * (time.perf_counter() - started) / repeats
    return timings


# ----- in the parent: the children's results as a section -----

def measure_input(source: Source, cores: list[int], log_path: Path) -> dict:
    """Every probe of one family, each in its own process: per core count, then the profile grid. The
    settings a figure is compared with run right after it, so load from other jobs drifts little between them."""
    per_core = {n: {what: run_child(Probe(what, "explicit", None, n), source, log_path) for what in ("augment", "fit")}
                for n in cores}
    profile: dict[str, dict[str, dict]] = {}
    for what in ("parse", "augment", "augment-ops", "model", "fit"):
        for probe in (Probe(what, threads, isa) for isa in (None, ISA_CAP) for threads in ("default", "explicit")):
            profile.setdefault(probe.setting, {})[what] = run_child(probe, source, log_path)
    return {"per_core": per_core, "profile": profile}


def format_core_rows(per_core: dict[int, dict[str, dict]]) -> tuple[str, float]:
    """Markdown rows of the per-core table, and the smallest input rate per core among them."""
    rows, smallest = [], float("inf")
    for n, r in sorted(per_core.items()):
        feed, fit = examples_per_second(r["augment"]), examples_per_second(r["fit"])
        smallest = min(smallest, feed / n)
        rows.append(f"| {n} | **{feed:,.0f}** ({r['augment']['examples']} in {r['augment']['seconds']:.2f} s) | "
                    f"**{feed / n:,.0f}** | {fit:,.1f} ({r['fit']['examples']} in {r['fit']['seconds']:.1f} s) | "
                    f"{r['fit']['steps'] / r['fit']['seconds']:,.2f} | {feed / fit:,.0f}x |")
    return "\n".join(rows), smallest


def format_setting_table(first: str, profile: dict[str, dict[str, dict]], labels: dict[str, str],
                         cell: Callable[[dict, str], str]) -> str:
    """A markdown table with a row per key of LABELS (shown as its label) and a column per setting of PROFILE."""
    rows = [[first, *profile]] + [[label, *(cell(r, key) for r in profile.values())] for key, label in labels.items()]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])


def epoch_split(r: dict[str, dict], segments: int, steps: int) -> dict[str, float]:
    """One setting's seconds per epoch (arithmetic): real fit (d), model's ops (c), input (b), read + parse (a)."""
    per_epoch = {what: segments / examples_per_second(r[what]) for what in ("parse", "augment", "fit")}
    per_epoch["model"] = ms_per_step(r["model"]) * steps / 1000.0
    return per_epoch


def format_split_rows(profile: dict[str, dict[str, dict]], segments: int, steps: int) -> str:
    """Markdown rows of :func:`epoch_split`, a setting per row."""
    rows = []
    for setting, r in profile.items():
        s = epoch_split(r, segments, steps)
        rest = s["fit"] - s["model"]
        rows.append(f"| {setting} | {s['fit']:.2f} | {s['model']:.2f} ({s['model'] / s['fit']:.0%}) | "
                    f"{s['parse']:.2f} | {s['augment'] - s['parse']:.2f} | {rest:.2f} ({rest / s['fit']:.0%}) |")
    return "\n".join(rows)


def ratio_text(profile: dict[str, dict[str, dict]], what: str, a: str, b: str) -> str:
    """"x.xx": examples/s of ``what`` under setting ``b`` over setting ``a``."""
    return f"{examples_per_second(profile[b][what]) / examples_per_second(profile[a][what]):.2f}"


def input_body(source: Source, examples_uri: str, results: dict, load: tuple, tf_version: str) -> str:
    """The section's markdown: setup, the per-core table with its arithmetic, and the profile."""
    core_rows, per_core = format_core_rows(results["per_core"])
    profile = results["profile"]
    base, explicit, capped = list(profile)[:3]
    examples = "; ".join(f"X = {x:,} examples/s: {cores_needed(x, per_core)} core(s)" for x in ACCELERATOR_RATES)
    ops = next(iter(profile.values()))["augment-ops"]["ops"]
    *single, whole = ops  # augment_batch, whole, is timed last
    slowest = max(single, key=ops.get)
    stages = format_setting_table("stage", profile, PROFILE_STAGES,
                                  lambda r, w: f"**{examples_per_second(r[w]):,.0f}** ({ms_per_step(r[w]):.1f} ms)")
    op_table = format_setting_table("op", profile, dict(zip(ops, ops)),
                                    lambda r, n: f"{r['augment-ops']['ops'][n]:.2f}")
    ms = {what: ms_per_step(profile[base][what]) for what in PROFILE_STAGES}
    return f"""
Data: the `train` split of `{shown_path(examples_uri)}` ({source.segments} segments, {source.steps} batches of
{source.batch_size}); `make bench-input` makes it, when missing, with `local_runner.py --model {source.model} --until
train --max-steps 1` on the synthetic default set (the README's first run). Model: {source.model}, compiled as the
trainer compiles it. TensorFlow {tf_version} on CPU. Every figure below is one child process of its own
(`taskset`, thread pools and `ONEDNN_MAX_CPU_ISA` set before TensorFlow starts), run one after another.
Input pipelines: one warm-up epoch, then {max(source.epochs, 10)} timed epochs with no model. `fit`:
{source.warmup_steps} warm-up steps, then {source.epochs} timed epoch(s) ({source.steps} steps each), without
validation or the trainer's callbacks. Explicit threads: intra-op pool = the process's cores, inter-op pool 1,
tf.data's private pool = the cores; default: TensorFlow's own choice.
{load_text(*load)}
(the machine's {os.cpu_count()} cores are shared with other jobs).

### Input pipeline per core, beside the trainer's step rate

The trainer's input pipeline (read, shuffle, parse, augment) alone, and `model.fit` on it, with the process pinned
to the first N cores (explicit threads, oneDNN uncapped):

| cores | input pipeline alone: examples/s | examples/s per core | fit: examples/s | fit: steps/s | input / fit |
|---|---|---|---|---|---|
{core_rows}

Sizing (arithmetic on the figures above, not a measurement): an accelerator that trains {source.model} at X examples/s
needs about **ceil(X / {per_core:,.0f})** input cores like these ({per_core:,.0f} examples/s: the smallest per-core
rate above), plus what the host's other work takes: {examples}. It assumes the rate grows linearly with the cores.

### Where an epoch of the trainer goes (the default first run's {source.model})

Examples/s (milliseconds per batch of {source.batch_size}) of each stage, each measured alone:

{stages}

Augmentation ops, milliseconds per batch (one tf.function per op on one parsed batch, 50 calls after 3):

{op_table}

One epoch of {source.segments} examples, seconds (arithmetic on the rows above: examples / rate; the model's ops
are (c)'s time per step times the epoch's steps; in the real fit the input pipeline runs beside the model):

| setting | real fit (d) | model's ops (c) | read + parse (a) | shuffle + augment (b - a) | fit beyond ops (d - c) |
|---|---|---|---|---|---|
{format_split_rows(profile, source.segments, source.steps)}

A negative d - c means that the real fit ran faster than the model on one cached batch: the two differ by less
than their run-to-run spread under this load, and the input pipeline, which runs beside the model, costs the
fit nothing measurable.

Comparisons (same run): the model's ops take {ms['model']:.1f} ms a step and the real fit {ms['fit']:.1f} ms ({base}).
Explicit threads / default: {ratio_text(profile, 'model', base, explicit)}x the model-only rate,
{ratio_text(profile, 'fit', base, explicit)}x the fit rate, {ratio_text(profile, 'augment', base, explicit)}x the input
pipeline's. oneDNN capped at {ISA_CAP} / uncapped (default threads): {ratio_text(profile, 'model', base, capped)}x the
model-only rate, {ratio_text(profile, 'fit', base, capped)}x the fit rate. Shuffle and augmentation add
{ms['augment'] - ms['parse']:.1f} ms a batch to the input pipeline ({base}); the costliest augmentation op is {slowest}
({ops[slowest]:.2f} ms of {ops[whole]:.2f} ms for augment_batch).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help=f"comma-separated (default: {','.join(MODEL_TYPES)}; with --input-only, cnn)")
    parser.add_argument("--batch-size", type=int, default=PipelineConfig().train.batch_size,
                        help="(default: the trainer's, %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="timed full epochs of fit per model/phase (default: "
                        "%(default)s); the input pipeline alone is timed over max(epochs, 10)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="fit steps before timing (default: %(default)s)")
    parser.add_argument("--pipeline-output", help="a local_runner.py --output-dir (holding metadata.sqlite) whose "
                        "newest Transform output every family reads; run there first when it has none (default: "
                        "<output-root>/real-<model>/, with --input-only <output-root>/synthetic-<model>/)")
    parser.add_argument("--input-only", action="store_true", help="input pipeline per core and the trainer's step "
                        "profile, on the synthetic default set (make bench-input)")
    parser.add_argument("--cores", default="1,2", help="--input-only: core counts to pin the per-core measurements "
                        "to (default: %(default)s)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # a child process's one measurement (JSON)
    add_real_data_arguments(parser, "holds real-<model>/ pipeline roots")
    args = parser.parse_args(argv)
    if args.probe:
        payload = json.loads(args.probe)
        source = Source(**{**payload["source"], "shards": tuple(payload["source"]["shards"])})
        print(RESULT_MARK + json.dumps(run_probe(Probe(**payload["probe"]), source)), flush=True)
        return
    models = parse_models(args.models or ("cnn" if args.input_only else ",".join(MODEL_TYPES)))
    logs = Path(args.output_root) / "bench-logs"
    kind = "synthetic" if args.input_only else "real"
    data_args = [] if args.input_only else ["--data-root", args.data_root, "--split", "lists-trainval",
                                            "--split-dir", args.split_dir]
    sources = {m: prepare(m, Path(args.pipeline_output or Path(args.output_root) / f"{kind}-{m}"), data_args,
                          logs / f"prepare-{'synthetic-' if args.input_only else ''}{m}.log") for m in models}
    body = input_main(args, models, sources, logs) if args.input_only else throughput_main(args, models, sources)
    name, title, target = SECTIONS[args.input_only]
    publish(body, not args.no_write, name, title, make_command(target, [a for a in argv or [] if a != "--input-only"]))


def input_main(args: argparse.Namespace, models: list[str], sources: dict[str, tuple[str, str]], logs: Path) -> str:
    """--input-only's section: each family's canonical shards written once, measured in child processes."""
    import tensorflow as tf

    from models import registry, training

    cores = [int(c) for c in args.cores.split(",") if c.strip()]
    for c in cores:
        pinned_cpus(c, os.sched_getaffinity(0))
    for m in models:
        if registry.has_pretrained_backbone(PipelineConfig().with_model(m)):
            raise SystemExit(f"--input-only measures families trained in one phase; {m} trains in two "
                             "(make bench-training measures its phases).")
    logs.mkdir(parents=True, exist_ok=True)
    bodies = []
    for m in models:
        graph_uri, examples_uri = sources[m]
        family = load_family(m, graph_uri, args.batch_size)
        with tempfile.TemporaryDirectory() as scratch:
            shards = family.train_shards(examples_uri, scratch)
            source = Source(m, graph_uri, shards.paths, training.count_records(shards), args.batch_size,
                            args.epochs, args.warmup_steps)
            (log_path := logs / f"input-{m}.log").write_text("")
            load = os.getloadavg()
            results = measure_input(source, cores, log_path)
        bodies.append(input_body(source, examples_uri, results, (load, os.getloadavg()), tf.__version__))
    return "\n".join(bodies)


def throughput_main(args: argparse.Namespace, models: list[str], sources: dict[str, tuple[str, str]]) -> str:
    """The throughput table's section: each family's fit against its input pipeline, in this process."""
    import tensorflow as tf

    load_before = os.getloadavg()
    results = [measure(m, *sources[m], args.batch_size, args.epochs, args.warmup_steps) for m in models]
    load_after = os.getloadavg()
    rows, ratios = format_rows(results)
    warmups = "; ".join(f"{r['model']} {r['input_warmup'].per_second:,.0f}" for r in results)
    sources_text = "\n".join(f"- {m}: `{shown_path(sources[m][1])}`" for m in models)
    slowest_cold = min(r["input_warmup"].per_second / max(f["rate"].per_second for f in r["fits"]
                                                           if f.get("input") is not None) for r in results)
    data_text = (f"the Transform output in `{args.pipeline_output}` (`--pipeline-output`)" if args.pipeline_output else
                 f"the real GTZAN clips' Transform output (protocol lists-trainval, 254 clips of the\n"
                 f"fault-filtered train+valid lists in `{args.data_root}`; 3 s segments)")
    return f"""
Data: the `train` split of {data_text}, one Transform output per family
because each reads its own features:
{sources_text}

Batch size {args.batch_size} for both measurements; TensorFlow {tf.__version__} on CPU, default thread pools.
Input pipeline: `models.training.make_dataset(train shards, training=True)` with the trainer's augmentation
(random gain {PipelineConfig().train.random_gain_db:g} dB, SpecAugment), iterated with no model for
{max(args.epochs, 10)} epochs after one warm-up epoch (warm-up epoch, segments/s: {warmups}); the split's
canonical shards (`models/canonical_order.py`) are written before either.
Training: `model.fit` on the same dataset with the trainer's model, optimiser and loss (`models.training.compile_model`),
{args.warmup_steps} warm-up steps, then {args.epochs} timed full epoch(s) without validation, each epoch timed from
its first to its last step. VGG is measured in the trainer's phases (`models.training.fit`): 1a, the frozen body
embeds the un-augmented train split once (compared with the un-augmented input pipeline, timed alone like the
augmented one); 1b, the head trains on those embeddings, streamed from a file (no tf.data input to compare with); 2, the
whole network is fine-tuned (batch norm kept frozen) on the augmented pipeline.
{load_text(load_before, load_after)} (2 cores shared with other jobs).

| model | input | parameters | fit: segments/s | input pipeline alone: segments/s | input / fit |
|---|---|---|---|---|---|
{rows}

Smallest input/fit ratio: **{min(ratios):,.0f}x** (goal: at least {RATIO_GOAL:g}x:
{'met for every family' if min(ratios) >= RATIO_GOAL else 'NOT met for every family'}). The input pipeline
was timed alone, so it had both cores; during `fit` it shares them with the model: at a ratio of R it needs
about 1/R of the machine to keep the model fed. The first epoch (the shards' first read,
after they were written) ran at {slowest_cold:.1f}x or more of the fastest fit of its family.
"""


def shown_path(path: str) -> str:
    """Relative to the project when inside it, else absolute."""
    rel = os.path.relpath(path, PROJECT_ROOT)
    return path if rel.startswith("..") else rel


if __name__ == "__main__":
    main(sys.argv[1:])
