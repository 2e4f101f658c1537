"""Checks of a gate report (clip_metrics.json) that the gate's unit tests and the end-to-end run share."""
from __future__ import annotations

import json

import pytest


def strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity, as strict parsers do."""
    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def assert_per_genre_consistent(data: dict, prefix: str) -> None:
    """Recall, precision and accuracy read off the report's confusion matrix are the reported ones."""
    matrix, per_genre = data[f"{prefix}clip_confusion"], data[f"{prefix}per_genre"]
    for genre, row in per_genre.items():
        clips = sum(matrix[genre].values())
        predicted = sum(matrix[true][genre] for true in matrix)
        assert row["clips"] == clips and row["predicted_clips"] == predicted
        assert row["clip_recall"] == (pytest.approx(matrix[genre][genre] / clips) if clips else None)
        assert row["clip_precision"] == (pytest.approx(matrix[genre][genre] / predicted) if predicted else None)
        assert row["clip_accuracy"] == row["clip_recall"]
    hits = sum(matrix[g][g] for g in matrix)
    assert data[f"{prefix}clip_accuracy"] == pytest.approx(hits / sum(r["clips"] for r in per_genre.values()))
