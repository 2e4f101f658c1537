"""Where a 30-s clip's time goes in ``serving_default`` of a musicnn-bodied model, stage by stage, for both
exported graphs (models/signatures.GRAPHS), at 22.05 kHz mono and at 44.1 kHz stereo downmixed to mono.

    python -m bench.profile_serving [--model-dir DIR] [--transform-dir DIR] [--repeats 15]   (make bench-profile)

DIR's newest version (default: the push destination) is loaded as Keras layers and re-exported with each graph.
Each stage is its own ``tf.function`` over the previous stage's output, built from the signatures' own library
functions; the stages run interleaved ``--repeats`` times (median wall and CPU shown), and their sum differs from
the whole signature by what the graph runs between them.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from bench.pushed_models import GRAPH_NAMES, export_graphs, load_pushed
from bench.report import add_no_write, make_command, publish
from bench.serving import bench_clip, interleaved_calls, signature_call
from config.settings import PipelineConfig

FRONT_END = "front end (5 convolutions, max over bands)"


def stages(model, config: PipelineConfig, graph: str, clip: np.ndarray, rate: int) -> list[tuple[str, Callable]]:
    """(stage, call) in serving order; each call runs one tf.function on the previous stage's output."""
    import tensorflow as tf
    import tf_keras as keras

    from models import audio, features, musicnn, signatures

    f, a = config.features, config.audio
    layer = model.get_layer
    steps: list[tuple[str, Callable]] = []
    value = {"x": (tf.constant(clip), tf.constant(rate, tf.int32))}  # each stage's output, as the next one's args

    def step(name: str, fn: Callable, key: str, out: str, jit: bool = False) -> None:
        traced = tf.function(fn, jit_compile=jit)
        value[out] = (traced(*value[key]),)
        steps.append((name, lambda: traced(*value[key])))

    def part(inputs, outputs) -> Callable:
        """The Keras model over part of MODEL's graph, called in inference mode."""
        sub = keras.Model(inputs, outputs)
        return lambda x: sub(x, training=False)

    def checks(waveform, sample_rate):
        done = [signatures._rate_check(sample_rate), *signatures._length_checks(config, tf.size(waveform), sample_rate),
                *signatures._level_checks(config, waveform)]
        return signatures._after(done, waveform)[0]

    step("checks (rate, length, finite, peak, silence)", checks, "x", "checked")
    step(f"resampling to {a.sample_rate} Hz", lambda w: audio.resample(w, tf.constant(rate), a.sample_rate),
         "checked", "resampled")
    step("segmenting (int16 quantisation, 3-s segments)", lambda w: audio.encode_pcm16_segments(
        w, a.segment_samples, a.hop_samples, a.last_segment), "resampled", "segments")
    step("Transform graph, whole (decode, STFT, mel, log, z-score)",
         lambda s: model.tft_layer({"audio": tf.reshape(s, [-1, 1])})[f.kind], "segments", "features")
    step("  of which decode + framing + STFT", lambda s: features._squared_stft_parts(
        audio.decode_pcm16(s, a.segment_samples), f), "segments", "stft")
    step("  of which mel filterbank", lambda p: features._mel_product(
        tf.reshape(p, tf.concat([tf.shape(p)[:2], [-1]], 0)), f, a.sample_rate, 2), "stft", "mel")
    step("  of which log", lambda m: features.log_compress(m, f), "mel", "log")
    step("z-score undone, input batch norm", part(model.input, layer(musicnn.INPUT_BN).output), "features", "image")
    front_end, mid_end = layer(musicnn.BACKBONE_PREFIX + "front_end").output, layer(musicnn.MID_END).output
    if graph == "serving":
        body = musicnn.ServingBody(model)
        front, mid = body.front_end, body.mid_end
    else:
        front, mid = part(layer(musicnn.INPUT_BN).output, front_end), part(front_end, mid_end)
    step(FRONT_END, front, "image", "front")
    if graph == "serving":  # what XLA would make of it (stock TF Serving runs XLA only behind a flag)
        step("  the same front end XLA-compiled (jit_compile; not exported)", front, "image", "front_xla", jit=True)
        segments = int(value["image"][0].shape[0])
        gemms = _front_end_gemms("valid")  # the timbral convolutions
        value["gemm"] = tuple(tf.random.uniform([segments * rows, depth]) for rows, depth, _ in gemms)
        weights = [tf.random.uniform([depth, filters]) for _, depth, filters in gemms]
        step("  reference: the timbral convolutions' multiply-adds as plain matmuls",
             lambda *xs: [tf.matmul(x, w) for x, w in zip(xs, weights)], "gemm", "gemm_out")
    step("mid end (3 convolutions)", mid, "front", "mid")
    step(f"heads ({model.name}: pooling, heads averaged)", part(mid_end, model.output), "mid", "scores")
    step("vote (mean over segments, argmax)", lambda p: tf.argmax(tf.reduce_mean(p, 0)), "scores", "genre")
    return steps


def _front_end_gemms(padding: Optional[str] = None) -> list[tuple[int, int, int]]:
    """(positions per segment, kernel taps, filters) as a GEMM of each front-end convolution of PADDING (None: all)."""
    from models import musicnn

    return [(musicnn.FRAMES * (musicnn.MELS - bands + 1 if pad == "valid" else musicnn.MELS), frames * bands, filters)
            for _, filters, (frames, bands), pad in musicnn.FRONT_END if padding in (None, pad)]


def profile(model, config: PipelineConfig, bases: dict[str, str], repeats: int, seconds: float) -> str:
    """The table of median wall (CPU) ms of the whole signature and every stage, per clip and exported graph."""
    stereo = np.stack([bench_clip(seconds, 44100, seed=1), bench_clip(seconds, 44100, seed=2)], axis=1)
    clips = {"22.05 kHz mono": (bench_clip(seconds, 22050), 22050),
             "44.1 kHz stereo, downmixed": (stereo.mean(axis=1).astype(np.float32), 44100)}
    whole, downmix = "serving_default, whole signature", "downmix (the caller's: numpy mean of 2 channels)"
    calls: dict[tuple[str, str, str], Callable] = {}
    for clip_name, (clip, rate) in clips.items():
        for graph, base in bases.items():
            calls[(whole, clip_name, graph)] = signature_call(os.path.join(base, "1"), clip, rate)
            if rate == 44100:
                calls[(downmix, clip_name, graph)] = lambda: stereo.mean(1)
            for name, call in stages(model, config, graph, clip, rate):
                calls[(name, clip_name, graph)] = call
    times = interleaved_calls(calls, repeats, warmup=1)
    graphs = list(bases)
    segments = int(seconds // config.audio.hop_seconds)
    flops = 2.0 * segments * sum(rows * depth * filters for rows, depth, filters in _front_end_gemms())
    rates = [f"{GRAPH_NAMES[g]} {flops / np.median(times[(FRONT_END, next(iter(clips)), g)][:, 1]) / 1e6:.0f}"
             for g in graphs]
    header = ["stage"] + [f"{clip} {GRAPH_NAMES[g]}" for clip in clips for g in graphs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys([whole, downmix, *(name for name, _, _ in calls)]):
        found = [times.get((name, clip, graph)) for clip in clips for graph in graphs]
        cells = ["-" if t is None else f"{np.median(t[:, 0]):.1f} ({np.median(t[:, 1]):.1f})" for t in found]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"The front end's convolutions: {flops / 1e9:.1f} GFLOP per clip "
              f"({segments} segments; 2 per multiply-add); GFLOP per CPU-second at 22.05 kHz: " + ", ".join(rates) + "."]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    cfg = PipelineConfig()
    parser = argparse.ArgumentParser(prog="python -m bench.profile_serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=cfg.serving_dir, help="TF Serving layout base dir (default: %(default)s)")
    parser.add_argument("--transform-dir", help="Transform output of the model (default: the newest under the "
                        "pipeline root)")
    parser.add_argument("--pipeline-root", default=cfg.pipeline_root, help="(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of every stage (default: %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="(default: %(default)s)")
    add_no_write(parser)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    model, config, version_dir = load_pushed(args.model_dir, args.transform_dir, args.pipeline_root)
    with tempfile.TemporaryDirectory() as tmp:
        table = profile(model, config, export_graphs(model, config, tmp), args.repeats, args.clip_seconds)
    body = "\n".join([
        f"Model: {model.name} (`<model dir>/{Path(version_dir).name}`), re-exported with each graph; a "
        f"{args.clip_seconds:g}-s clip (bench.serving's tones and noise). Each cell: median wall ms (CPU ms, both "
        f"cores' time) of {args.repeats} runs, stages interleaved. \"training graph's layers\": "
        "`signatures.export(graph='keras')`; \"ServingBody\": the default export (models/musicnn.py).",
        "", table, "",
        f"Load average (1 min) {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end: the machine's "
        "2 cores were shared with other work, so compare the columns of this table with each other only.",
    ])
    publish(body, not args.no_write, "profile-serving", "musicnn serving profile: serving_default stage by stage",
            make_command("bench-profile", argv))


if __name__ == "__main__":
    main()
