"""bench/serving.py on the stand-in model: it measures all three paths and writes its section.

The server is the test double in a subprocess (TF Serving cannot run here); BENCHMARKS.md
is redirected to a temporary file so the test never touches the real figures.
"""
from __future__ import annotations

import re

import pytest

import bench.report
from bench.serving import main
from tests.testkit.serving import build_stand_in_model


def test_bench_reports_three_paths_and_names_the_test_double(tmp_path, monkeypatch, capsys):
    base = tmp_path / "genre"
    build_stand_in_model(base, version=3)
    report = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(bench.report, "BENCHMARKS_MD", report)
    main(["--model-dir", str(base), "--requests", "6", "--warmup", "1", "--clip-seconds", "30"])
    text = report.read_text()
    assert "<!-- bench:serving -->" in text and f"Command: `make bench-serving ARGS=\"--model-dir {base} " in text
    assert "test double" in text and "not TF Serving's C++ server" in text
    assert f"{base}/3" in text  # the newest version was measured
    rows = re.findall(r"^\| model \(as pushed\) \| (direct|gRPC)[^|]*\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
                      text, re.M)
    assert len(rows) == 3
    for _, count, p50, p99, throughput in rows:
        assert int(count) == 6 and 0 < float(p50) <= float(p99) and float(throughput) > 0
    assert "2.65 MB" in text  # 30 s x 22050 Hz x 4 bytes
    assert "| path | requests |" in capsys.readouterr().out  # also printed


def test_bench_without_a_pushed_model_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="No pushed model.*make run"):
        main(["--model-dir", str(tmp_path / "nothing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="No pushed model .* under .*empty.*saved_model.pb"):
        main(["--model-dir", str(tmp_path / "empty")])
