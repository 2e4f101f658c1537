"""Two-phase transfer learning helpers shared by the pretrained families (VGG, EfficientNet).

Phase 1 trains a new head, or several to average (:func:`average_heads`), on embeddings the frozen
body computes once (models/training.fit_heads_on_embeddings needs the model cut in two: :func:`split_at`);
phase 2 fine-tunes the whole network with the body's batch norms frozen
(:func:`set_trainable`).
"""
from __future__ import annotations

from typing import Iterable, Sequence

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


def average_heads(model: keras.Model, body: keras.Model, heads: Sequence[keras.Model]) -> keras.Model:
    """``model``'s body followed by the mean of ``heads``' probabilities, named as ``model`` (the registry
    finds a family by its model's name). The heads are named head_1, head_2, ... in the new model.

    A mean of probabilities is still a probability vector, so everything downstream of the model (the
    serving signatures' segment vote, the gates) is unchanged. ``body`` is split_at's, sharing
    ``model``'s layers, so fine-tuning the new model fine-tunes the body it was built from.
    """
    embedding = body.output
    outputs = [keras.Model(head.inputs, head.outputs, name=f"head_{i}")(embedding)
               for i, head in enumerate(heads, start=1)]
    return keras.Model(model.input, keras.layers.Average(name="probabilities", dtype="float32")(outputs), name=model.name)


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
