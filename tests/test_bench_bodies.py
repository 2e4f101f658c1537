"""bench.pretrained_bodies' probe and report (fast: toy embeddings, no TensorFlow model)."""
from __future__ import annotations

import numpy as np

from bench import pretrained_bodies as bodies


def _split(rng: np.random.Generator, clips: int, separation: float) -> tuple:
    """Ten genres, clips x 4 segments each; genre g's embeddings centred on separation * e_g."""
    labels = np.repeat(np.arange(clips) % 10, 4)
    tracks = np.repeat(np.array([f"t{i}".encode() for i in range(clips)]), 4)
    x = rng.standard_normal((len(labels), 16)).astype(np.float32)
    x[np.arange(len(labels)), labels] += separation
    return x, labels, tracks


def test_probe_scores_the_eval_split_at_segment_and_clip_level():
    rng = np.random.default_rng(0)
    separable = {"train": _split(rng, 40, 4.0), "eval": _split(rng, 20, 4.0)}
    segment, clip = bodies.probe(separable, 1.0)
    assert segment > 0.9 and clip == 1.0
    noise = {"train": _split(rng, 40, 0.0), "eval": _split(rng, 20, 0.0)}
    segment, clip = bodies.probe(noise, 1.0)
    assert segment < 0.4  # chance is 0.1: the probe cannot score what is not there


def test_report_names_the_protocol_and_every_row():
    text = bodies.report([("MSD_musicnn mean_pool (753)", 0.01, 0.682, 0.725, 97.0),
                          ("MSD_vgg pool5 (256)", 0.01, 0.55, 0.569, 88.0)], 51, 507, "/x/Transform/transformed_examples/7")
    assert "lists-trainval" in text and "51 clips, 507 segments" in text
    assert "| MSD_musicnn mean_pool (753) | 0.01 | 0.682 | 0.725 | 97 |" in text
    assert text.count("\n| MSD_") == 2
