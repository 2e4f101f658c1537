"""musicnn's MSD_musicnn as a Keras 2 model: the pretrained front and mid end (musicnn/models.py's layout, 753
channels per frame), mean-pooled over time, and a new genre head. The mean pool probed better than MSD_vgg's pool5
and musicnn's own tag back end (BENCHMARKS.md, "Pretrained bodies compared")."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tf_keras as keras

from config.settings import TrainConfig
from models import transfer
from models.blocks import as_image, batch_norm, check_input_shape, softmax_head, undo_zscore
from models.musicnn_weights import assign_layers, read_checkpoint

FRAMES, MELS = 187, 96  # musicnn's training input: 3 s at 16 kHz, hop 256 (the VGG's features)
CHECKPOINT = "MSD_musicnn"
# (name, filters, kernel [frames, bands], padding) of the front end, in the checkpoint's creation order.
# Timbral kernels span int(0.4 * 96) and int(0.7 * 96) bands; filters are int(1.6 * 128) and int(1.6 * 32).
FRONT_END: tuple[tuple[str, int, tuple[int, int], str], ...] = (
    ("timbral_74", 204, (7, 38), "valid"),
    ("timbral_77", 204, (7, 67), "valid"),
    ("temporal_128", 51, (128, 1), "same"),
    ("temporal_64", 51, (64, 1), "same"),
    ("temporal_32", 51, (32, 1), "same"),
)
MID_FILTERS = 64
MID_LAYERS = 3
MID_KERNEL = 7
HEAD_DROPOUT = 0.5
BACKBONE_PREFIX = transfer.BACKBONE_PREFIX  # every pretrained layer's name starts with it
INPUT_BN = BACKBONE_PREFIX + "input_bn"
MID_END = BACKBONE_PREFIX + "mid_end"  # [batch, 187, 753]: front end and mid end, every frame
EMBEDDING = BACKBONE_PREFIX + "mean_pool"  # [batch, 753]


def checkpoint_scopes() -> dict[str, str]:
    """Keras layer name -> TF1 variable scope in MSD_musicnn (creation order in musicnn.models.build_musicnn)."""
    scopes = {INPUT_BN: "batch_normalization"}
    names = [name for name, *_ in FRONT_END] + [f"mid{i}" for i in range(1, MID_LAYERS + 1)]
    for layer, name in enumerate(names):
        scopes[f"{BACKBONE_PREFIX}{name}_conv"] = f"conv2d_{layer}" if layer else "conv2d"
        scopes[f"{BACKBONE_PREFIX}{name}_bn"] = f"batch_normalization_{layer + 1}"
    return scopes


def _front_end(x, name: str, filters: int, kernel: tuple[int, int], padding: str):
    """conv -> ReLU -> BN -> max over the mel axis: [batch, frames, filters]. As musicnn's, the timbral ones (and
    the mid end's, whose kernel spans every channel) pad time only ('valid' across); the temporal ones are 'same'."""
    if padding == "valid":
        x = keras.layers.ZeroPadding2D(((kernel[0] // 2, kernel[0] // 2), (0, 0)),
                                       name=f"{BACKBONE_PREFIX}{name}_pad")(x)
    x = keras.layers.Conv2D(filters, kernel, padding=padding, activation="relu",
                            name=f"{BACKBONE_PREFIX}{name}_conv")(x)
    x = batch_norm(f"{BACKBONE_PREFIX}{name}_bn")(x)
    if x.shape[2] > 1:
        x = keras.layers.MaxPooling2D((1, x.shape[2]), name=f"{BACKBONE_PREFIX}{name}_pool")(x)
    return keras.layers.Reshape((-1, filters), name=f"{BACKBONE_PREFIX}{name}_squeeze")(x)


def build_musicnn(input_shape: Sequence[Optional[int]], num_classes: int, train: TrainConfig, *,
                  input_name: str = "log_mel", pretrained: bool = True,
                  input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> keras.Model:
    """MSD_musicnn's front and mid end, their mean over time, batch norm, dropout, softmax; ``train`` is unused."""
    del train
    frames, bins = check_input_shape(input_shape, "musicnn")
    if (frames, bins) != (FRAMES, MELS):
        raise ValueError(f"musicnn: MSD_musicnn takes ({FRAMES}, {MELS}) = (frames, mels) inputs, got "
                         f"({frames}, {bins}). Use PipelineConfig().with_model('musicnn') feature settings.")
    inputs = keras.Input(shape=(FRAMES, MELS), name=input_name, dtype="float32")
    # Batch norm before the head's dropout, as musicnn's back end has: the 753 channels differ vastly in scale.
    outputs = softmax_head(body(inputs, input_stats), num_classes, dropout=HEAD_DROPOUT, normalise=True)
    model = keras.Model(inputs, outputs, name="musicnn")
    if pretrained:
        load_pretrained(model)
    return model


def body(inputs: tf.Tensor, input_stats: Optional[tuple[np.ndarray, np.ndarray]] = None) -> tf.Tensor:
    """MSD_musicnn's front and mid end on ``inputs``, mean-pooled to the [batch, 753] :data:`EMBEDDING`."""
    image = batch_norm(INPUT_BN)(as_image(undo_zscore(inputs, input_stats), BACKBONE_PREFIX + "to_image"))
    front = keras.layers.Concatenate(name=BACKBONE_PREFIX + "front_end")(
        [_front_end(image, *spec) for spec in FRONT_END])
    mid = [front]
    for i in range(1, MID_LAYERS + 1):  # a 7-frame convolution across every channel, ReLU, BN; residual
        x = _front_end(as_image(mid[-1], f"{BACKBONE_PREFIX}mid{i}_to_image"), f"mid{i}", MID_FILTERS,
                       (MID_KERNEL, mid[-1].shape[-1]), "valid")
        mid.append(x if i == 1 else keras.layers.Add(name=f"{BACKBONE_PREFIX}mid{i}_residual")([x, mid[-1]]))
    dense = keras.layers.Concatenate(name=MID_END)(mid)
    return keras.layers.GlobalAveragePooling1D(name=EMBEDDING)(dense)


def load_pretrained(model: keras.Model, checkpoint: str = CHECKPOINT) -> list[str]:
    """Copy every front- and mid-end tensor of ``checkpoint`` into ``model``; returns the names loaded."""
    return assign_layers(model, checkpoint_scopes(), read_checkpoint(checkpoint))


# ----- the exported graph's body -------------------------------------------------------------------------
def _conv_affine(model: keras.Model, name: str) -> tuple[np.ndarray, ...]:
    """Layer ``name``'s convolution (kernel, bias) and its inference-mode batch norm as (scale, shift) per channel."""
    weights, bias = model.get_layer(f"{BACKBONE_PREFIX}{name}_conv").get_weights()
    bn = model.get_layer(f"{BACKBONE_PREFIX}{name}_bn")
    gamma, beta, mean, variance = bn.get_weights()
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return weights, bias, scale.astype(np.float32), (beta - scale * mean).astype(np.float32)


def _constant(value: np.ndarray, name: str) -> tf.Variable:
    """A fixed tensor of the serving body, saved with the model's variables (not inlined in its graph)."""
    return tf.Variable(np.asarray(value, np.float32), trainable=False, name=name)


class ServingBody(tf.Module):
    """The pretrained front and mid end as the exported graph runs them: the Keras layers' function, cheaper. The
    max over mel positions comes first and ReLU and batch norm run on the maxima: both are monotone, and a channel
    with a negative BN scale has its convolution negated. Weights are read once, at export."""

    def __init__(self, model: keras.Model):
        super().__init__(name="musicnn_serving_body")
        self.branches = []
        for name, _, kernel, padding in FRONT_END:
            weights, bias, scale, shift = _conv_affine(model, name)
            sign = np.where(scale < 0, -1.0, 1.0).astype(np.float32)
            self.branches.append((kernel, padding, _constant(weights * sign, f"{name}_kernel"),
                                  _constant(bias * sign, f"{name}_bias"), _constant(sign, f"{name}_sign"),
                                  _constant(scale, f"{name}_scale"), _constant(shift, f"{name}_shift")))
        self.mid = []
        for i in range(1, MID_LAYERS + 1):
            weights, bias, scale, shift = _conv_affine(model, f"mid{i}")  # weights [7, C, 1, 64]
            self.mid.append((_constant(weights[:, :, 0, :], f"mid{i}_kernel"), _constant(bias, f"mid{i}_bias"),
                             _constant(scale, f"mid{i}_scale"), _constant(shift, f"mid{i}_shift")))

    def front_end(self, image: tf.Tensor) -> tf.Tensor:
        """[batch, 187, 96, 1] -> [batch, 187, 561], as the FRONT_END branches concatenated."""
        branches = []
        for kernel, padding, weights, bias, sign, scale, shift in self.branches:
            if padding == "valid":  # time padded as in _front_end; 'valid' across the bands
                x = tf.nn.conv2d(tf.pad(image, [[0, 0], [kernel[0] // 2] * 2, [0, 0], [0, 0]]), weights, 1, "VALID")
            else:
                x = tf.nn.conv2d(image, weights, 1, "SAME")
            peak = tf.reduce_max(tf.nn.bias_add(x, bias), axis=2)  # sign * (max or min) over the bands
            branches.append(tf.nn.relu(peak * sign) * scale + shift)
        return tf.concat(branches, axis=-1)

    def mid_end(self, front: tf.Tensor) -> tf.Tensor:
        """[batch, 187, 561] -> [batch, 187, 753]: the front end and the three mid-end layers, concatenated."""
        outputs, x = [front], front
        for i, (weights, bias, scale, shift) in enumerate(self.mid):
            y = tf.nn.relu(tf.nn.conv1d(x, weights, 1, "SAME") + bias) * scale + shift  # 'SAME': 3 frames each side
            x = y if i == 0 else y + x
            outputs.append(x)
        return tf.concat(outputs, axis=-1)

    def __call__(self, image: tf.Tensor) -> tf.Tensor:
        return self.mid_end(self.front_end(image))


def serving_function(model: keras.Model, musicnn_input: str = "log_mel") -> Callable[..., tf.Tensor]:
    """``model``'s function (input -> probabilities) with :class:`ServingBody` (tracked on ``model`` so it is saved)
    in place of the front and mid end; the Keras layers before and after run as they are. With several inputs,
    the body runs on ``musicnn_input`` and the others go to the layers after the mid end."""
    model.serving_body = ServingBody(model)
    by_name = model.input if isinstance(model.input, dict) else {musicnn_input: model.input}
    others = [name for name in by_name if name != musicnn_input]
    before = keras.Model(by_name[musicnn_input], model.get_layer(INPUT_BN).output)
    after = keras.Model([model.get_layer(MID_END).output, *(by_name[name] for name in others)], model.output)

    def call(inputs: Union[tf.Tensor, dict[str, tf.Tensor]]) -> tf.Tensor:
        inputs = inputs if isinstance(inputs, dict) else {musicnn_input: inputs}
        mid = model.serving_body(before(inputs[musicnn_input], training=False))
        return after([mid, *(inputs[name] for name in others)], training=False)

    return call
