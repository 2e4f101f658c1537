"""Helpers for the model families' tests: separable toy data and a short learnability run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import tf_keras as keras

from models.musicnn_weights import checkpoint_key


def separable_batch(n: int, frames: int, bins: int, num_classes: int, seed: int = 0,
                    shift: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Unit noise plus a class-dependent mean shift in that class's own band of bins."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.standard_normal((n, frames, bins)).astype(np.float32)
    edges = np.linspace(0, bins, num_classes + 1).astype(int)
    for c in range(num_classes):
        x[y == c, :, edges[c]:edges[c + 1]] += shift
    return x, y.astype(np.int64)


def loss_before_after(model: keras.Model, x: np.ndarray, y: np.ndarray, *, epochs: int,
                      batch_size: int = 16, learning_rate: float = 3e-3) -> tuple[float, float]:
    """Cross-entropy on (x, y) in inference mode before and after a few Adam epochs on it."""
    model.compile(keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    before = float(model.evaluate(x, y, batch_size=64, verbose=0))
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    after = float(model.evaluate(x, y, batch_size=64, verbose=0))
    return before, after


def rhythmic_batch(n: int, frames: int, bins: int, num_classes: int, seed: int = 0,
                   level: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel-like toy clips: class = onset period x band, at musicnn's input level (~2).

    A pretrained music model sees onsets in a band; it barely sees the i.i.d. band shifts
    of :func:`separable_batch` (and MSD_vgg's last pool drops the top third of the bands).
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = level + 0.3 * rng.standard_normal((n, frames, bins))
    t, b = np.arange(frames)[:, None], np.arange(bins)[None, :]
    half = (num_classes + 1) // 2
    for i, c in enumerate(y):
        period = 4 + 2 * (c % half)
        centre = bins * (0.1 + 0.3 * (c // half))
        onsets = (t + rng.integers(period)) % period == 0
        x[i] += 2.0 * onsets * np.exp(-((b - centre) / (bins / 8)) ** 2)
    return x.astype(np.float32), y.astype(np.int64)


def log_mel_like(n: int, shape: Sequence[int], seed: int) -> np.ndarray:
    """[n, *shape] values like musicnn's log10(1 + 10000 * mel) front end (0 to about 4)."""
    rng = np.random.default_rng(seed)
    return np.log10(1 + 10000 * rng.exponential(1e-3, (n, *shape))).astype(np.float32)


def assert_checkpoint_loaded(model: keras.Model, layer_to_scope: Mapping[str, str],
                             tensors: Mapping[str, np.ndarray]) -> set[str]:
    """Every weight of the mapped layers equals its checkpoint tensor; returns the checkpoint names compared."""
    seen = set()
    for layer_name, scope in layer_to_scope.items():
        for weight in model.get_layer(layer_name).weights:
            key = checkpoint_key(scope, weight.name)
            np.testing.assert_array_equal(weight.numpy(), tensors[key], err_msg=key)
            seen.add(key)
    return seen


def musicnn_tf1_outputs(checkpoint: str, x: np.ndarray, tmp_path) -> list[np.ndarray]:
    """Every output of musicnn's own TF1 graph for ``checkpoint`` (musicnn.models.define_model order),
    restored with a v1 Saver and run on ``x`` in inference mode: the reference the Keras ports match.

    Runs in its own process: tf.compat.v1.layers in a Graph invalidate every Keras model made
    outside it (tf_keras' "_assert_built_as_v1" error), so it cannot share the test's process.
    """
    np.save(Path(tmp_path) / "x.npy", x)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           "TF_USE_LEGACY_KERAS": "1"}
    out = Path(tmp_path) / "outputs.npz"
    subprocess.run([sys.executable, "-m", "tests.testkit.model_checks", checkpoint, str(Path(tmp_path) / "x.npy"),
                    str(out)], env=env, cwd=root, check=True, timeout=300)
    with np.load(out) as outputs:
        return [outputs[f"out{i}"] for i in range(len(outputs.files))]


def _run_musicnn_tf1(checkpoint: str, x: np.ndarray) -> list[np.ndarray]:
    import tensorflow as tf
    from musicnn import models as musicnn_models  # TF1 graph code; imported only in the subprocess

    from models.musicnn_weights import checkpoint_prefix

    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, *x.shape[1:]])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = musicnn_models.define_model(inputs, is_training, checkpoint, 50)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, checkpoint_prefix(checkpoint))
            return session.run(list(outputs), {inputs: x, is_training: False})


if __name__ == "__main__":  # the TF1 reference, run by musicnn_tf1_outputs
    reference = _run_musicnn_tf1(sys.argv[1], np.load(sys.argv[2]))
    np.savez(sys.argv[3], **{f"out{i}": value for i, value in enumerate(reference)})
