"""Serving signatures of the exported model (contract and every refusal: docs/contracts.md).

All run Transform's own graph on segments cut exactly as ExampleGen's, so no second feature code can drift. Bad
input is refused with INVALID_ARGUMENT (an Assert carrying a sentence) before any work that grows with the clip."""
from __future__ import annotations

from typing import Callable, Union

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from config.settings import PipelineConfig
from models import audio, features, musicnn

DEFAULT_SIGNATURE = "serving_default"
WAV_SIGNATURE = "serving_wav"
EXAMPLES_SIGNATURE = "from_examples"
FEATURES_SIGNATURE = "segment_features"
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 192000
# Peaks in (1, MAX_PEAK] are clipped to [-1, 1], as training's int16 quantisation clips them (lossy decoders and
# resampling overshoot full scale); a larger peak means the wrong scale, e.g. int16 values sent as float.
MAX_PEAK = 4.0
# serving_wav: WAV encodings decoded in-graph, (format code, bits per sample) -> branch index.
# 1 = PCM (8-bit unsigned, 16/24/32-bit signed), 3 = IEEE float; 0xFFFE (extensible) names one of them.
WAV_ENCODINGS = ((1, 8), (1, 16), (1, 24), (1, 32), (3, 32), (3, 64))
WAV_MAX_CHUNKS = 64  # RIFF chunks read while looking for "fmt " and "data"
WAV_MAX_CHANNELS = 64

# The exported model's graph: "serving" runs musicnn's front and mid end as musicnn.ServingBody (cheaper); "keras"
# runs the training layers, for bench/serving.py and the equality test. Other families export one graph either way.
GRAPHS = ("serving", "keras")

Part = Union[str, tf.Tensor]
ModelInput = Union[tf.Tensor, dict[str, tf.Tensor]]  # one input, or several by kind (features.as_model_input)
Inference = Callable[[ModelInput], tf.Tensor]


def attach_transform(model: keras.Model, tft_output: tft.TFTransformOutput) -> None:
    """Track the transform graph on the model so it is saved with it."""
    model.tft_layer = tft_output.transform_features_layer()


# ----- refusals --------------------------------------------------------------
def _num(x: tf.Tensor, precision: int = -1) -> tf.Tensor:
    """A number as text for a message (precision -1: integer)."""
    if precision < 0:
        return tf.strings.as_string(tf.cast(x, tf.int64))
    return tf.strings.as_string(tf.cast(x, tf.float64), precision=precision)


def _refuse_unless(ok: tf.Tensor, *parts: Part) -> tf.Operation:
    """INVALID_ARGUMENT with the sentence PARTS join to, unless OK. No quotes in PARTS: the Assert op C-escapes them."""
    sentence = tf.strings.join([tf.convert_to_tensor(p, tf.string) for p in parts])
    return tf.debugging.Assert(ok, [sentence], summarize=1)


def _after(checks: list, *tensors: tf.Tensor) -> list[tf.Tensor]:
    """TENSORS, usable only once CHECKS have passed (so no work is done on refused input)."""
    with tf.control_dependencies([c for c in checks if c is not None]):
        return [tf.identity(t) for t in tensors]


def _rate_check(sample_rate: tf.Tensor) -> tf.Operation:
    ok = tf.logical_and(sample_rate >= MIN_SAMPLE_RATE, sample_rate <= MAX_SAMPLE_RATE)
    return _refuse_unless(ok, "The sample rate of ", _num(sample_rate), " Hz is outside the supported range of ",
                          f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz.")


def _length_checks(config: PipelineConfig, num_samples: tf.Tensor, sample_rate: tf.Tensor) -> list:
    """Non-empty, at most ``serving.max_clip_seconds``, at least one segment."""
    n = tf.cast(num_samples, tf.float64)
    rate = tf.cast(sample_rate, tf.float64)
    limit, segment = config.serving.max_clip_seconds, config.audio.segment_seconds
    empty = _refuse_unless(n > 0, "The audio clip is empty (0 samples).")
    with tf.control_dependencies([empty]):
        too_long = _refuse_unless(
            n <= limit * rate, "The audio clip is ", _num(n / rate, 1), " s long, longer than the ",
            f"{limit:g} s this model accepts (serving.max_clip_seconds); send at most {limit:g} s of it.")
    with tf.control_dependencies([too_long]):
        too_short = _refuse_unless(n >= tf.math.ceil(segment * rate), "The audio clip is ", _num(n / rate, 2),
                                   f" s long, shorter than one {segment:g} s segment.")
    return [empty, too_long, too_short]


def _level_checks(config: PipelineConfig, waveform: tf.Tensor) -> list:
    """Finite, peak within MAX_PEAK, louder than ``audio.silence_dbfs`` without DC: audio/levels.py's rules."""
    finite = _refuse_unless(tf.reduce_all(tf.math.is_finite(waveform)),
                            "The audio clip contains NaN or Inf samples; every sample must be finite.")
    peak = tf.reduce_max(tf.abs(waveform))
    with tf.control_dependencies([finite]):
        loud = _refuse_unless(
            peak <= MAX_PEAK, "The audio clip peaks at ", _num(peak, 1), f", above the accepted peak of {MAX_PEAK:g}; ",
            "samples must be float32 in [-1, 1] (int16 PCM divided by 32768).")
    # levels.py's silence rule: the clipped samples' RMS after removing their mean (a DC offset alone is silent).
    clipped = tf.clip_by_value(waveform, -1.0, 1.0)
    rms = tf.sqrt(tf.reduce_mean(tf.square(clipped - tf.reduce_mean(clipped))))
    dbfs = 20.0 * tf.math.log(tf.cast(rms, tf.float64)) / tf.math.log(tf.constant(10.0, tf.float64))
    floor = config.audio.silence_dbfs
    with tf.control_dependencies([loud]):
        silent = _refuse_unless(dbfs >= floor, "The audio clip is silent: its RMS level of ", _num(dbfs, 1),
                                f" dBFS is below the silence floor of {floor:g} dBFS (audio.silence_dbfs).")
    return [finite, loud, silent]


# ----- the serving path ----------------------------------------------------------
def _transformed(model: keras.Model, config: PipelineConfig, pcm_segments: tf.Tensor) -> ModelInput:
    # The raw schema declares every feature with shape [1], so the transform graph takes [batch, 1].
    return features.as_model_input(model.tft_layer({"audio": tf.reshape(pcm_segments, [-1, 1])}), config.features)


def segment_features(model: keras.Model, config: PipelineConfig, waveform: tf.Tensor,
                     sample_rate: tf.Tensor) -> ModelInput:
    """Whole clip -> model input per segment (a dict by kind for several): validate, resample, segment, transform."""
    sample_rate = tf.cast(sample_rate, tf.int32)
    rate_ok = _rate_check(sample_rate)
    with tf.control_dependencies([rate_ok]):
        checks = _length_checks(config, tf.size(waveform), sample_rate)
    with tf.control_dependencies(checks[-1:]):
        checks += _level_checks(config, waveform)
    waveform, sample_rate = _after([rate_ok, *checks], waveform, sample_rate)
    waveform = audio.resample(waveform, sample_rate, config.audio.sample_rate)
    segments = audio.encode_pcm16_segments(waveform, config.audio.segment_samples, config.audio.hop_samples,
                                           config.audio.last_segment)  # clips (1, MAX_PEAK] to full scale
    return _transformed(model, config, segments)


def inference(model: keras.Model, graph: str = GRAPHS[0]) -> Inference:
    """Model input -> probabilities as the exported GRAPH computes them (see GRAPHS)."""
    if graph not in GRAPHS:
        raise ValueError(f"The export graph must be one of {GRAPHS}, not {graph!r}.")
    if graph == "serving" and musicnn.MID_END in {layer.name for layer in model.layers}:
        return musicnn.serving_function(model)
    return lambda inputs: model(inputs, training=False)


def classify_clip(model: keras.Model, config: PipelineConfig, infer: Inference, waveform: tf.Tensor,
                  sample_rate: tf.Tensor) -> dict[str, tf.Tensor]:
    """serving_default's answer for one clip: segment scores, their mean, the best genre, the genres and the hop."""
    segment_scores = infer(segment_features(model, config, waveform, sample_rate))
    scores = tf.reduce_mean(segment_scores, axis=0)
    genres = tf.constant(list(config.genres))
    # hop_seconds: so a caller can place segment_scores on the clip's timeline whatever the model's hop.
    return {"scores": scores, "genre": tf.gather(genres, tf.argmax(scores)), "segment_scores": segment_scores,
            "genres": genres, "hop_seconds": tf.constant(config.audio.hop_seconds, tf.float32)}


# ----- WAV bytes -----------------------------------------------------------------
def _bytes(data: tf.Tensor, offset, width) -> tf.Tensor:
    """WIDTH bytes at OFFSET, fewer (or none) where the data ends: never an out-of-range error."""
    length = tf.strings.length(data, unit="BYTE")
    start = tf.clip_by_value(tf.cast(offset, tf.int32), 0, length)
    return tf.strings.substr(data, start, tf.maximum(tf.cast(width, tf.int32), 0))


def _le_uint(data: tf.Tensor, offset: tf.Tensor, width: int) -> tf.Tensor:
    """Unsigned little-endian integer of WIDTH bytes at OFFSET (int64); bytes past the end read as 0."""
    raw = tf.cast(tf.io.decode_raw(_bytes(data, offset, width), tf.uint8), tf.int64)
    raw = tf.pad(raw, [[0, width - tf.size(raw)]])
    return tf.reduce_sum(raw * tf.constant([256 ** i for i in range(width)], tf.int64))


def _wav_chunks(data: tf.Tensor, length: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """(fmt offset, fmt size, data offset, data size) of the first "fmt " and "data" chunks; -1 if absent."""
    minus_one = tf.constant(-1, tf.int64)

    def more(i, offset, fmt_at, fmt_size, data_at, data_size):
        return tf.logical_and(tf.logical_and(i < WAV_MAX_CHUNKS, offset + 8 <= length),
                              tf.logical_or(fmt_at < 0, data_at < 0))

    def step(i, offset, fmt_at, fmt_size, data_at, data_size):
        chunk = _bytes(data, offset, 4)
        size = _le_uint(data, offset + 4, 4)
        is_fmt = tf.logical_and(tf.equal(chunk, "fmt "), fmt_at < 0)
        is_data = tf.logical_and(tf.equal(chunk, "data"), data_at < 0)
        return (i + 1, offset + 8 + size + size % 2,
                tf.where(is_fmt, offset + 8, fmt_at), tf.where(is_fmt, size, fmt_size),
                tf.where(is_data, offset + 8, data_at), tf.where(is_data, size, data_size))

    start = (tf.constant(0, tf.int64), tf.constant(12, tf.int64), minus_one, minus_one, minus_one, minus_one)
    return tuple(tf.while_loop(more, step, start)[2:])


def _decode_pcm(pcm: tf.Tensor, encoding: tf.Tensor) -> tf.Tensor:
    """Interleaved samples (a whole number of frames) -> float32 in [-1, 1], per WAV_ENCODINGS index."""
    def raw(dtype: tf.DType) -> tf.Tensor:
        return tf.io.decode_raw(pcm, dtype)

    def s24():
        b = tf.reshape(tf.cast(raw(tf.uint8), tf.int32), [-1, 3])
        value = b[:, 0] + 256 * b[:, 1] + 65536 * b[:, 2]
        value = tf.where(value >= 2 ** 23, value - 2 ** 24, value)
        return tf.cast(value, tf.float32) / float(2 ** 23)

    return tf.switch_case(tf.cast(encoding, tf.int32), [
        lambda: (tf.cast(raw(tf.uint8), tf.float32) - 128.0) / 128.0,
        lambda: tf.cast(raw(tf.int16), tf.float32) / 32768.0,
        s24,
        lambda: tf.cast(tf.cast(raw(tf.int32), tf.float64) / 2.0 ** 31, tf.float32),
        lambda: raw(tf.float32),
        lambda: tf.cast(raw(tf.float64), tf.float32)])


def decode_wav(config: PipelineConfig, data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A WAV file's bytes (PCM or IEEE float, plain or extensible) -> (mono float32 waveform, sample rate), or
    INVALID_ARGUMENT. Channels are averaged as ingestion does; the length is checked from the header before
    decoding, and a truncated data chunk is read as far as it goes."""
    length = tf.cast(tf.strings.length(data, unit="BYTE"), tf.int64)
    riff = tf.logical_and(tf.equal(_bytes(data, 0, 4), "RIFF"), tf.equal(_bytes(data, 8, 4), "WAVE"))
    is_riff = _refuse_unless(riff, "The wav_bytes input is not a RIFF WAVE file.")
    with tf.control_dependencies([is_riff]):
        fmt_at, fmt_size, data_at, data_size = _wav_chunks(data, length)
    has_fmt = _refuse_unless(tf.logical_and(fmt_at >= 0, fmt_size >= 16), "The WAV file has no complete fmt chunk.")
    has_data = _refuse_unless(data_at >= 0, "The WAV file has no data chunk.")
    with tf.control_dependencies([has_fmt, has_data]):
        code = _le_uint(data, fmt_at, 2)
    channels = _le_uint(data, fmt_at + 2, 2)
    rate = _le_uint(data, fmt_at + 4, 4)
    bits = _le_uint(data, fmt_at + 14, 2)
    code = tf.where(tf.logical_and(tf.equal(code, 0xFFFE), fmt_size >= 26), _le_uint(data, fmt_at + 24, 2), code)
    known = tf.constant([c * 1000 + b for c, b in WAV_ENCODINGS], tf.int64)
    matches = tf.where(tf.equal(known, code * 1000 + bits))[:, 0]
    supported = _refuse_unless(
        tf.size(matches) > 0, "The WAV encoding (format code ", _num(code), ", ", _num(bits),
        " bits per sample) is not supported; send 8, 16, 24 or 32 bit PCM or 32 or 64 bit float WAV, ",
        "or decode the file and send the waveform to serving_default.")
    channels_ok = _refuse_unless(tf.logical_and(channels >= 1, channels <= WAV_MAX_CHANNELS), "The WAV file declares ",
                                 _num(channels), f" channels; 1 to {WAV_MAX_CHANNELS} are supported.")
    rate_ok = _rate_check(rate)
    frame_bytes = tf.maximum(channels * (bits // 8), 1)
    available = tf.maximum(tf.minimum(data_size, length - data_at), 0)
    frames = available // frame_bytes
    with tf.control_dependencies([supported, channels_ok, rate_ok]):
        length_ok = _length_checks(config, frames, rate)  # from the header: nothing decoded yet
    encoding, data_at, frames, channels, frame_bytes = _after(
        [supported, channels_ok, rate_ok, *length_ok], tf.concat([matches, [0]], 0)[0], data_at, frames, channels,
        frame_bytes)
    pcm = _bytes(data, data_at, frames * frame_bytes)
    samples = tf.reshape(_decode_pcm(pcm, encoding), tf.stack([frames, channels]))
    return tf.reduce_mean(samples, axis=1), tf.cast(rate, tf.int32)


# ----- signatures ----------------------------------------------------------------
def make_signatures(model: keras.Model, config: PipelineConfig,
                    graph: str = GRAPHS[0]) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Build the signatures; ``attach_transform`` must have been called. ``segment_features`` exposes what the
    serving path feeds the model, for skew checks. Traced without AutoGraph, which only slows the export: the
    control flow is already graph ops."""
    infer = inference(model, graph)
    clip = [tf.TensorSpec([None], tf.float32, name="waveform"), tf.TensorSpec([], tf.int32, name="sample_rate")]

    @tf.function(autograph=False, input_signature=clip)
    def serve_waveform(waveform: tf.Tensor, sample_rate: tf.Tensor) -> dict[str, tf.Tensor]:
        return classify_clip(model, config, infer, waveform, sample_rate)

    @tf.function(autograph=False, input_signature=clip)
    def serve_features(waveform: tf.Tensor, sample_rate: tf.Tensor) -> dict[str, tf.Tensor]:
        # ``features`` (``features.kind``), and each extra kind under its own name.
        model_input = segment_features(model, config, waveform, sample_rate)
        by_kind = model_input if config.features.extra_kinds else {config.features.kind: model_input}
        return {"features" if kind == config.features.kind else kind: x for kind, x in by_kind.items()}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([], tf.string, name="wav_bytes")])
    def serve_wav(wav_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return classify_clip(model, config, infer, *decode_wav(config, wav_bytes))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        pcm = tf.io.parse_example(examples, {"audio": tf.io.FixedLenFeature([], tf.string)})["audio"]
        expected = 2 * config.audio.segment_samples
        sizes = tf.strings.length(pcm, unit="BYTE")
        whole = _refuse_unless(
            tf.reduce_all(tf.equal(sizes, expected)), f"Every example must hold {expected} bytes of audio ",
            f"({config.audio.segment_samples} int16 samples, audio.segment_samples); one holds ",
            _num(tf.concat([tf.boolean_mask(sizes, sizes != expected), [0]], 0)[0]), " bytes.")
        (pcm,) = _after([whole], pcm)
        # An empty batch has nothing to classify: the convolutions would fail on it.
        probabilities = tf.cond(tf.size(pcm) > 0, lambda: infer(_transformed(model, config, pcm)),
                                lambda: tf.zeros([0, len(config.genres)], tf.float32))
        return {"probabilities": probabilities}

    return {DEFAULT_SIGNATURE: serve_waveform.get_concrete_function(), WAV_SIGNATURE: serve_wav.get_concrete_function(),
            EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
            FEATURES_SIGNATURE: serve_features.get_concrete_function()}


def export(model: keras.Model, tft_output: tft.TFTransformOutput, config: PipelineConfig, path: str,
           graph: str = GRAPHS[0]) -> None:
    """Save the model with its transform graph and signatures as a TF SavedModel; ``save_traces=False`` because
    nothing loads the traced call functions, and saving and loading are many times faster without them."""
    attach_transform(model, tft_output)
    model.save(path, save_format="tf", signatures=make_signatures(model, config, graph), save_traces=False)
