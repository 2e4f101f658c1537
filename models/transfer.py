"""Two-phase transfer learning helpers shared by the pretrained families (VGG, EfficientNet).

Phase 1 trains a new head on embeddings the frozen body computes once
(models/training.fit_head_on_embeddings needs the model cut in two: :func:`split_at`);
phase 2 fine-tunes the whole network with the body's batch norms frozen
(:func:`set_trainable`).
"""
from __future__ import annotations

from typing import Iterable

import tf_keras as keras


def split_at(model: keras.Model, embedding_layer: str) -> tuple[keras.Model, keras.Model]:
    """(body, head) sharing ``model``'s layers: body maps the input to ``embedding_layer``'s output,
    head applies the layers after it, which must form a chain, to an embedding input."""
    layer = model.get_layer(embedding_layer)
    body = keras.Model(model.input, layer.output, name=f"{model.name}_body")
    embedding = keras.Input(shape=body.output_shape[1:], name="embedding")
    x = embedding
    for later in model.layers[model.layers.index(layer) + 1:]:
        x = later(x)
    return body, keras.Model(embedding, x, name=f"{model.name}_head")


def set_trainable(layers: Iterable[keras.layers.Layer], trainable: bool, *, train_batch_norm: bool = False) -> None:
    """Freeze or unfreeze ``layers`` (nested models included); recompile afterwards.

    Batch-norm layers, also inside nested models, stay frozen when unfreezing unless
    ``train_batch_norm``: a frozen Keras BN layer runs in inference mode, so the pretrained
    statistics are not overwritten by small fine-tuning batches (Keras' transfer-learning advice).
    """
    for layer in layers:
        layer.trainable = trainable
        if trainable and not train_batch_norm:
            for sub in (layer, *layer.submodules):
                if isinstance(sub, keras.layers.BatchNormalization):
                    sub.trainable = False
