"""Two-phase transfer learning for the pretrained families (VGG, EfficientNet): phase 1 trains new heads on
embeddings the frozen body computes once (:func:`split_at`, :func:`average_heads`); phase 2 fine-tunes the whole
network with the body's batch norms frozen (:func:`set_backbone_trainable`)."""
from __future__ import annotations

from typing import Sequence

import tf_keras as keras

BACKBONE_PREFIX = "musicnn_"  # every layer of a musicnn body (MSD_vgg, MSD_musicnn) starts with it
NESTED_BODIES = ("efficientnetb0", "efficientat_mn04")  # EfficientNetB0 and mn04, each one nested model


def split_at(model: keras.Model, embedding_layer: str) -> tuple[keras.Model, keras.Model]:
    """(body, head) sharing ``model``'s layers, cut after ``embedding_layer``; the layers after it must be a chain."""
    layer = model.get_layer(embedding_layer)
    body = keras.Model(model.input, layer.output, name=f"{model.name}_body")
    embedding = keras.Input(shape=body.output_shape[1:], name="embedding")
    x = embedding
    for later in model.layers[model.layers.index(layer) + 1:]:
        x = later(x)
    return body, keras.Model(embedding, x, name=f"{model.name}_head")


def average_heads(model: keras.Model, body: keras.Model, heads: Sequence[keras.Model]) -> keras.Model:
    """``body`` (split_at's) followed by the mean of ``heads``' probabilities, still a probability vector, so
    serving and gates are unchanged; named as ``model``, since the registry finds a family by its model's name."""
    embedding = body.output
    outputs = [keras.Model(head.inputs, head.outputs, name=f"head_{i}")(embedding)
               for i, head in enumerate(heads, start=1)]
    return keras.Model(model.input, keras.layers.Average(name="probabilities", dtype="float32")(outputs),
                       name=model.name)


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The pretrained layers of any family: the musicnn bodies' by prefix, EfficientNetB0 and mn04 by name."""
    return [layer for layer in model.layers if layer.name.startswith(BACKBONE_PREFIX) or layer.name in NESTED_BODIES]


def set_backbone_trainable(model: keras.Model, trainable: bool, *, train_batch_norm: bool = False) -> None:
    """Freeze or unfreeze ``model``'s pretrained layers (nested models included); batch norms stay frozen unless
    ``train_batch_norm``, so small fine-tuning batches do not overwrite the pretrained statistics."""
    for layer in backbone_layers(model):
        layer.trainable = trainable
        if trainable and not train_batch_norm:
            for sub in (layer, *layer.submodules):
                if isinstance(sub, keras.layers.BatchNormalization):
                    sub.trainable = False
