"""bench.export on the CNN (about 10 s): both ways are measured, the reload predicts what the model does, and
the table holds one row per family with the figures it measured."""
from __future__ import annotations

from bench import export


def test_measure_saves_both_ways_and_the_reload_predicts_the_same():
    row = export.measure("cnn")
    for traces in (True, False):
        assert row[f"save_{traces}"] > 0 and row[f"keras_load_{traces}"] > 0 and row[f"megabytes_{traces}"] > 0
        assert row[f"max_diff_{traces}"] < 1e-5
    assert row["megabytes_False"] < row["megabytes_True"]  # the traces are gone from the files
    lines = export.table([row, dict(row, family="lstm")]).splitlines()
    assert len(lines) == 4 and lines[2].startswith(f"| cnn | {row['parameters']:,} | {row['save_True']:.1f} / ")
