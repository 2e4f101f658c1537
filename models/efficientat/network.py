"""EfficientAT's mn04 (a MobileNetV3 at width 0.4, AudioSet head) as a tf_keras functional model.

Layers mirror the PyTorch reference's modules so its state_dict loads one per layer. Padding is PyTorch's
symmetric zeros, explicit, because Keras' 'same' pads a strided convolution asymmetrically and would shift frames."""
from __future__ import annotations

from collections import namedtuple
from typing import Any

import tensorflow as tf
import tf_keras as keras

from models.efficientat.log_mel import N_MELS, frontend

WIDTH = 0.4
NUM_CLASSES = 527
HIDDEN_UNITS = 512
DROPOUT = 0.2
# torch BatchNorm2d(eps=0.001, momentum=0.01): torch's momentum weighs the new batch, Keras' the old mean.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
SE_REDUCTION = 4


# One inverted-residual block of MobileNetV3-Large, before width scaling; hardswish False: ReLU.
BlockSpec = namedtuple("BlockSpec", "inputs kernel expanded outputs squeeze_excite hardswish stride")
# MobileNetV3-Large's bottleneck table (Howard et al. 2019, table 1).
LARGE_BLOCKS: tuple[BlockSpec, ...] = tuple(BlockSpec(*row) for row in (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
))


def round_channels(channels: float, divisor: int = 8) -> int:
    """Channel count rounded to the nearest multiple of ``divisor`` but never more than 10 % below ``channels``."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def hard_swish(x: tf.Tensor, name: str) -> tf.Tensor:
    """torch.nn.Hardswish from built-in layers: Keras 2 has none of this form, and a custom layer would make the
    saved model unloadable by a process (TFMA's Evaluator) that has not imported this module."""
    gate = keras.layers.Rescaling(1.0 / 6.0, offset=0.5, name=name + "_gate_affine")(x)
    gate = keras.layers.ReLU(max_value=1.0, name=name + "_gate")(gate)
    return keras.layers.Multiply(name=name)([x, gate])


@keras.saving.register_keras_serializable(package="efficientat")
class LogMelFrontend(keras.layers.Layer):
    """The reference front end (log_mel.py) as a layer: (batch, samples) at 32 kHz -> (batch, 128, frames)."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return frontend(inputs)


def _torch(layer_class: type, prefix: str, kind: str, *args: Any, **kwargs: Any) -> keras.layers.Layer:
    """A layer named after the torch module ``prefix`` that fills its weights, tagged with it and its kind (read by
    weights.py)."""
    layer = layer_class(*args, name=_name(prefix), **kwargs)
    layer.torch_prefix, layer.torch_kind = prefix, kind
    return layer


def _name(prefix: str) -> str:
    return prefix.replace(".", "_")


def _conv_bn_act(x: tf.Tensor, prefix: str, filters: int, kernel: int, stride: int, *,
                 depthwise: bool = False, hardswish: bool | None = True) -> tf.Tensor:
    """Conv (no bias) + BatchNorm + activation (None: none), torch's ConvNormActivation with symmetric padding."""
    pad = (kernel - 1) // 2
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=_name(prefix) + "_pad")(x)
    if depthwise:
        x = _torch(keras.layers.DepthwiseConv2D, prefix + ".0", "depthwise", kernel, strides=stride, use_bias=False)(x)
    else:
        x = _torch(keras.layers.Conv2D, prefix + ".0", "conv", filters, kernel, strides=stride, use_bias=False)(x)
    x = _torch(keras.layers.BatchNormalization, prefix + ".1", "batchnorm", epsilon=BN_EPSILON, momentum=BN_MOMENTUM)(x)
    if hardswish is not None:
        name = _name(prefix) + "_act"
        x = hard_swish(x, name) if hardswish else keras.layers.ReLU(name=name)(x)
    return x


def _squeeze_excite(x: tf.Tensor, prefix: str, channels: int) -> tf.Tensor:
    """Channel squeeze-excitation: mean over (freq, time) -> Linear, ReLU -> Linear, sigmoid -> rescale."""
    squeezed = round_channels(channels // SE_REDUCTION)
    scale = keras.layers.GlobalAveragePooling2D(keepdims=True, name=_name(prefix) + "_mean")(x)
    scale = _torch(keras.layers.Dense, prefix + ".fc1", "dense", squeezed, activation="relu")(scale)
    scale = _torch(keras.layers.Dense, prefix + ".fc2", "dense", channels, activation="sigmoid")(scale)
    return keras.layers.Multiply(name=_name(prefix) + "_scale")([x, scale])


def _inverted_residual(x: tf.Tensor, prefix: str, spec: BlockSpec) -> tf.Tensor:
    inputs, expanded, outputs = (round_channels(c * WIDTH) for c in (spec.inputs, spec.expanded, spec.outputs))
    shortcut, step = x, 0
    if expanded != inputs:
        x = _conv_bn_act(x, f"{prefix}.block.{step}", expanded, 1, 1, hardswish=spec.hardswish)
        step += 1
    x = _conv_bn_act(x, f"{prefix}.block.{step}", expanded, spec.kernel, spec.stride, depthwise=True,
                     hardswish=spec.hardswish)
    step += 1
    if spec.squeeze_excite:
        x = _squeeze_excite(x, f"{prefix}.block.{step}.conc_se_layers.0", expanded)
        step += 1
    x = _conv_bn_act(x, f"{prefix}.block.{step}", outputs, 1, 1, hardswish=None)
    if spec.stride == 1 and inputs == outputs:
        x = keras.layers.Add(name=_name(prefix) + "_residual")([shortcut, x])
    return x


def stage_widths() -> list[int]:
    """Channels of the 17 'features' stages (stem, 15 blocks, last 1x1 convolution)."""
    widths = [round_channels(c * WIDTH) for c in (LARGE_BLOCKS[0].inputs, *(s.outputs for s in LARGE_BLOCKS))]
    return widths + [6 * widths[-1]]


def build_mn04(*, waveform_input: bool = True, block_means: bool = False) -> keras.Model:
    """mn04 with random weights (load_mn04_weights fills them), on a 32 kHz waveform or, with
    ``waveform_input=False``, the (batch, 128, frames) log-mel. Outputs 'features' (384), 'hidden', 'logits' and,
    with ``block_means``, each stage's mean (for parity checks)."""
    if waveform_input:
        inputs = keras.Input(shape=(None,), name="waveform")
        mel = LogMelFrontend(name="log_mel")(inputs)
    else:
        inputs = mel = keras.Input(shape=(N_MELS, None), name="log_mel")
    x = keras.layers.Reshape((N_MELS, -1, 1), name="to_image")(mel)
    widths = stage_widths()
    stages = [_conv_bn_act(x, "features.0", widths[0], 3, 2)]
    for index, spec in enumerate(LARGE_BLOCKS, start=1):
        stages.append(_inverted_residual(stages[-1], f"features.{index}", spec))
    stages.append(_conv_bn_act(stages[-1], f"features.{len(LARGE_BLOCKS) + 1}", widths[-1], 1, 1))
    features = keras.layers.GlobalAveragePooling2D(name="features")(stages[-1])
    hidden = _torch(keras.layers.Dense, "classifier.2", "dense", HIDDEN_UNITS)(features)
    hidden = hard_swish(hidden, "hidden")
    dropped = keras.layers.Dropout(DROPOUT, name="classifier_dropout")(hidden)
    logits = _torch(keras.layers.Dense, "classifier.5", "dense", NUM_CLASSES)(dropped)
    outputs: dict[str, Any] = {"features": features, "hidden": hidden,
                               "logits": keras.layers.Activation("linear", name="logits")(logits)}
    if block_means:
        means = [keras.layers.GlobalAveragePooling2D(name=f"stage_{i}_mean")(s) for i, s in enumerate(stages)]
        outputs["block_means"] = keras.layers.Concatenate(name="block_means")(means)
    return keras.Model(inputs, outputs, name="mn04")
