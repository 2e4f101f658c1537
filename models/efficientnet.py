"""EfficientNetB0 (tf_keras.applications) on the log-mel spectrogram as a 3-channel image.

The log-mel is averaged 2 x 2 (a quarter of the compute), not resized to 224 x 224, and z-scores become pixels.
With weights it trains in two phases like the VGG; from random initialisation it trains whole from the start."""
from __future__ import annotations

import functools
import socket
from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras
# The URL and hash Keras' own weights="imagenet" download uses (not exported publicly).
from tf_keras.src.applications.efficientnet import BASE_WEIGHTS_PATH, WEIGHTS_HASHES

from config.errors import UserError
from config.settings import TrainConfig
from models.blocks import check_input_shape, softmax_head

BACKBONE = "efficientnetb0"  # the nested Keras application (its own name)
EMBEDDING = "head_pool"  # global average of the body's last feature map, [batch, 1280]
IMAGENET = "imagenet"
IMAGENET_FILE = "efficientnetb0_notop.h5"
HEAD_DROPOUT = 0.2  # EfficientNetB0's own top dropout
Z_RANGE = 3.0  # z-scores within +-Z_RANGE fill the 0..255 pixel range
DOWNLOAD_TIMEOUT_S = 30.0
# From random initialisation, batch norm's moving statistics must catch up with a body that changes fast.
RANDOM_INIT_BN_MOMENTUM = 0.9
# (frames, bins) averaged before the body: 130 x 128 -> 65 x 64, a quarter of the compute.
INPUT_POOL = (2, 2)


@functools.lru_cache(maxsize=8)
def weights_source(path: Optional[str]) -> Optional[str]:
    """What to load into the body: ``path``, ``"imagenet"`` (fetched into Keras' cache), or None (random); decided
    once per process so the builder and the trainer's choice of phases agree."""
    if path:
        if not tf.io.gfile.exists(path):
            raise UserError(f"The EfficientNet weights file {path} does not exist", where="--backbone-weights",
                            fix="pass a Keras weights file of EfficientNetB0 without its top "
                            f"({IMAGENET_FILE}), or leave the flag out.")
        print(f"[train] efficientnet: body weights from {path} (--backbone-weights); two-phase training", flush=True)
        return path
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        keras.utils.get_file(IMAGENET_FILE, BASE_WEIGHTS_PATH + IMAGENET_FILE, cache_subdir="models",
                             file_hash=WEIGHTS_HASHES["b0"][1])
    except Exception as error:  # noqa: BLE001 - any failure to fetch means: no ImageNet weights here
        reason = " ".join(str(error).split(" -- ")[-1].split())[:100]  # Keras: "URL fetch failure on URL: .. -- why"
        print(f"[train] efficientnet: random initialisation (no --backbone-weights; Keras' ImageNet download failed: "
              f"{reason}), so the whole network trains from the first epoch: freezing a random body is pointless",
              flush=True)
        return None
    finally:
        socket.setdefaulttimeout(previous)
    print("[train] efficientnet: ImageNet weights (Keras); two-phase training", flush=True)
    return IMAGENET


def build_efficientnet(input_shape: Sequence[Optional[int]], num_classes: int, train: TrainConfig, *,
                       input_name: str = "log_mel", weights: Optional[str] = "configured") -> keras.Model:
    """2 x 2 average, pixels, three channels, EfficientNetB0's body, global average pool, dropout, softmax;
    ``weights``: "configured" uses :func:`weights_source`, else None, "imagenet" or a file path (tests)."""
    frames, bins = check_input_shape(input_shape, "efficientnet")
    least = (32 * INPUT_POOL[0], 32 * INPUT_POOL[1])  # EfficientNet's smallest image, 32 x 32, after the pool
    if frames is None or frames < least[0] or bins < least[1]:
        raise ValueError(f"efficientnet: the input must be at least {least[0]} x {least[1]} (frames x bins), "
                         f"got ({frames}, {bins}).")
    if weights == "configured":
        weights = weights_source(train.backbone_weights)
    inputs = keras.Input(shape=(frames, bins), name=input_name, dtype="float32")
    x = keras.layers.Reshape((frames, bins, 1), name="to_image")(inputs)
    x = keras.layers.AveragePooling2D(INPUT_POOL, name="downsample")(x)
    x = keras.layers.Rescaling(127.5 / Z_RANGE, offset=127.5, name="to_pixels")(x)
    x = keras.layers.Concatenate(axis=-1, name="to_rgb")([x, x, x])
    body = keras.applications.EfficientNetB0(include_top=False, weights=weights, input_shape=tuple(x.shape[1:]))
    if weights is None:
        for layer in body.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = RANDOM_INIT_BN_MOMENTUM
    x = body(x)
    x = keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(x)
    outputs = softmax_head(x, num_classes, dropout=HEAD_DROPOUT)
    return keras.Model(inputs, outputs, name="efficientnet")
