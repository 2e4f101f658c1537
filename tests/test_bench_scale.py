"""bench/scale.py: step attribution of memory samples, process-tree memory, criteria, projections, and a tiny
end-to-end run through local_runner (two small libraries, --until validate) that writes its section."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bench.report
from bench import scale
from bench.scale import OUTSIDE, MeasuredRun, Sample


def _run(label: str, tracks: int, steps: dict[str, tuple[float, float]], outcome: str = "executed") -> MeasuredRun:
    """A run whose steps have (peak MiB, seconds); every step sampled."""
    return MeasuredRun(label, tracks, 100.0, {
        name: {"peak_mib": peak, "seconds": seconds, "outcome": "-" if name == OUTSIDE else outcome, "samples": 3,
               "launcher_peak_mib": peak, "workers_peak_mib": 0.0} for name, (peak, seconds) in steps.items()},
        launcher_hwm_mib=1000.0, children_maxrss_mib=500.0)


def test_step_lines_are_read_as_starts_and_ends():
    assert scale.step_event("[step] AudioExampleGen ...\n") == ("start", "AudioExampleGen")
    assert scale.step_event("[step] Trainer: done in 12 s") == ("end", "Trainer")
    assert scale.step_event("[step] Transform: reused from cache") == ("end", "Transform")
    assert scale.step_event("[step] Pusher: skipped (its condition does not hold: the model was not blessed)") == \
        ("end", "Pusher")
    assert scale.step_event("[step] Trainer still running (30 s)") is None
    assert scale.step_event("[ingest] 12/40 files decoded") is None
    assert scale.step_event("=== genre pipeline: summary ===") is None


def test_each_sample_goes_to_the_step_running_at_its_time():
    events = [(10.0, "start", "A"), (20.0, "end", "A"), (20.5, "start", "B"), (30.0, "end", "B"),
              (31.0, "start", "C"), (35.0, "start", "D")]  # C has no end line: it ends where D starts
    samples = [Sample(5.0, 100, 0), Sample(12.0, 300, 700), Sample(18.0, 400, 100), Sample(25.0, 350, 0),
               Sample(30.2, 120, 0), Sample(33.0, 500, 50), Sample(99.0, 600, 0)]
    memory = scale.attribute(samples, events)
    assert (memory["A"].peak_kib, memory["A"].launcher_peak_kib, memory["A"].workers_peak_kib) == (1000, 400, 700)
    assert memory["A"].samples == 2
    assert (memory["B"].peak_kib, memory["B"].samples) == (350, 1)
    assert (memory["C"].peak_kib, memory["D"].peak_kib) == (550, 600)  # D never ended: the run stopped in it
    assert (memory[OUTSIDE].peak_kib, memory[OUTSIDE].samples) == (120, 2)
    assert scale.attribute([], [(1.0, "start", "E")])["E"].samples == 0  # a step too short to be sampled


def test_a_process_trees_memory_counts_the_launcher_and_its_workers():
    # A launcher whose child (a stand-in for a Beam worker) holds 200 MiB.
    code = ("import subprocess, sys; w = subprocess.Popen([sys.executable, '-c', "
            "'import time; b = bytes([7]) * (200 << 20); print(1, flush=True); time.sleep(60)'], "
            "stdout=subprocess.PIPE); w.stdout.readline(); print('ready', flush=True); "
            "sys.stdin.readline(); w.kill()")
    launcher = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout.readline().strip() == "ready"
        assert len(scale.descendants(launcher.pid)) == 1
        sample = scale.sample_tree(launcher.pid)
        assert sample.workers_kib > 200 * 1024 and 0 < sample.launcher_kib < 100 * 1024
        assert sample.total_kib == sample.launcher_kib + sample.workers_kib
    finally:
        launcher.communicate("\n", timeout=60)
    assert scale.sample_tree(launcher.pid).total_kib == 0  # a process that is gone has no memory


def test_memory_and_time_criteria_compare_executed_steps_of_the_smallest_and_largest_library():
    base = _run("1x", 200, {"AudioExampleGen": (1000, 20), "Trainer": (2000, 60), OUTSIDE: (900, 30)})
    flat = _run("30x", 6000, {"AudioExampleGen": (1200, 600), "Trainer": (2400, 1000), OUTSIDE: (1000, 31)})
    assert scale.memory_criterion(base, flat).passed and scale.time_criterion(base, flat).passed

    grows = _run("30x", 6000, {"AudioExampleGen": (1300, 800), "Trainer": (2000, 1000), OUTSIDE: (1200, 31)})
    memory, timing = scale.memory_criterion(base, grows), scale.time_criterion(base, grows)
    assert not memory.passed and "AudioExampleGen 1300 vs 1000 MiB" in memory.detail and "outside" in memory.detail
    assert not timing.passed and "AudioExampleGen 133.3 vs 100.0 s per 1,000 tracks" in timing.detail
    assert "Trainer" not in timing.detail  # 166.7 s per 1,000 tracks, below the 1x figure: fixed cost amortised

    cached = _run("30x", 6000, {"AudioExampleGen": (5000, 9000), "Trainer": (2400, 1000), OUTSIDE: (1000, 31)},
                  outcome="reused from cache")
    assert scale.memory_criterion(base, cached).passed  # a step that did not execute is not compared
    assert scale.memory_criterion(base, base).passed is None  # one size: nothing to compare


def test_the_decode_criterion_wants_three_times_less_cpu_per_track():
    whole = {"cpu_seconds": 9.0, "tracks": 30}
    assert scale.decode_criterion(whole, {"cpu_seconds": 2.9, "tracks": 30}).passed
    assert not scale.decode_criterion(whole, {"cpu_seconds": 3.1, "tracks": 30}).passed
    assert scale.decode_criterion(None, None).passed is None


def test_projections_extend_the_two_largest_libraries_slope_and_never_a_falling_one():
    points = [(200, 1000.0), (2000, 1020.0), (6200, 1060.0)]
    # The slope between the two largest libraries: 40 MiB over 4,200 tracks, not 60 over 6,000.
    assert scale.memory_slope_mib_per_track(points) == pytest.approx(40 / 4200)
    assert scale.project_memory_mib(points, 100_000) == pytest.approx(1060 + 40 / 4200 * 93_800)
    assert scale.project_memory_mib([(200, 1100.0), (6000, 1000.0)], 1_000_000) == 1000.0
    assert scale.project_memory_mib([(200, 1100.0)], 1_000_000) == 1100.0
    assert scale.project_seconds(600.0, 6000, 1_000_000) == pytest.approx(100_000.0)
    table = scale.projection_table([_run("1x", 200, {"Trainer": (1000, 20), OUTSIDE: (900, 5)}),
                                    _run("30x", 6000, {"Trainer": (1058, 600), OUTSIDE: (900, 6)})])
    assert "| Trainer | 10.0 | 1,998 | 2.8 | 10,998 | 27.8 |" in table


def test_the_growth_table_shows_each_runs_work_and_the_criterion_weighs_three_steps():
    def run(label, tracks, seconds, decoded, spans, embedded):
        measured = _run(label, tracks, {"AudioExampleGen": (900, seconds[0]), "StatisticsGen": (800, seconds[1]),
                                        "Transform": (1200, seconds[2]), "Trainer": (2000, 500.0), OUTSIDE: (700, 9)})
        measured.work = {"span": {"decoded": decoded, "segments": {"train": 7 * decoded, "test": 3 * decoded}},
                         "transform": {"spans_analysed": spans, "spans_transformed": spans}, "embedded": embedded}
        return measured
    runs = [run("first run", 2000, (70, 24, 109), 2000, "1", "16,600 of 16,600"),
            run("incremental re-run", 2020, (5, 9, 20), 20, "2", "140 of 16,740"),
            run("--full rebuild", 2020, (74, 24, 105), 2020, "3", "16,740 of 16,740")]
    table = "\n".join(scale.growth_table(runs))
    assert "| incremental re-run | 2,020 | 20 | 200 | 2 / 2 | 140 of 16,740 | 5.0 | 9.0 | 20.0 | 500.0 | 100 |" in table
    passed = scale.growth_criterion(runs)
    assert passed.passed and passed.detail == "34 s against 203 s: 17%"
    runs[1].steps["Transform"]["seconds"] = 40.0
    assert not scale.growth_criterion(runs).passed  # 54 s: 27 %


def test_scales_and_flags_are_checked():
    assert [scale.tracks_per_genre(s) for s in (0.05, 1, 10, 30)] == [3, 20, 200, 600]
    assert scale.parse_scales("30,1,10") == [1.0, 10.0, 30.0]
    for bad in ("", "0,1", "a"):
        with pytest.raises(Exception, match="positive scales"):
            scale.parse_scales(bad)
    with pytest.raises(SystemExit):
        scale.parse_args(["--full-length-tracks", "10"])  # fewer than 3 a genre: the splits cannot be made


def test_a_run_that_fails_says_so_with_its_console(tmp_path):
    with pytest.raises(SystemExit, match=r"(?s)The tiny run failed \(exit code 1\).*Run not started"):
        scale.measure_run("tiny", 1, ["--data-root", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "o")],
                          0.25, tmp_path / "logs")


def test_full_length_tracks_are_decoded_whole_and_by_ingestion(tmp_path):
    from synthetic.generator import generate_library

    paths = generate_library(tmp_path, 1, 240.0, sample_rate=44100, genres=("rock", "jazz"), audio_format="flac",
                             channels=2, tracks_per_album=1)
    whole, ingestion = scale.measure_decode("whole", "cnn", paths), scale.measure_decode("ingestion", "cnn", paths)
    assert whole["tracks"] == ingestion["tracks"] == 2
    assert whole["source_seconds"] == pytest.approx(480) and whole["decoded_seconds"] == pytest.approx(480, abs=1)
    # Ingestion keeps 20 segments of 3 s a track and decodes only those windows.
    assert ingestion["decoded_seconds"] == pytest.approx(120, abs=1)
    lines = "\n".join(scale.decode_lines(whole, ingestion))
    assert "windowed decoding" in lines and "| 2 | 480 | 120 |" in lines


def test_a_tiny_end_to_end_run_writes_its_section(tmp_path, monkeypatch):
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n")
    monkeypatch.setattr(bench.report, "BENCHMARKS_MD", benchmarks)
    argv = ["--scales", "0.15,0.2", "--track-seconds", "3.5", "--tracks-per-album", "1", "--full-length-tracks", "0",
            "--until", "validate", "--output-root", str(tmp_path / "out")]
    body = scale.main(argv)
    text = benchmarks.read_text()
    assert "<!-- bench:scale -->" in text and "make bench-scale ARGS=" in text and "CPU: " in text
    assert "| 0.15x | 30 |" in body and "| 0.2x | 40 |" in body  # 3 and 4 tracks a genre, ten genres
    for step in ("AudioExampleGen", "StatisticsGen", OUTSIDE):
        assert f"| {step} |" in body
    assert "Projections, not measurements" in body and "not measured" in body  # no full-length tracks asked
    # One track an album, two albums an artist: rock's fourth track is its second artist's second album.
    assert (tmp_path / "out" / "libraries" / "0.2x-3.5s" / "rock" / "Rock Artist 2" / "Album 2" /
            "01 Intro.wav").exists()
    results = json.loads((tmp_path / "out" / "scale.json").read_text())
    ingestion = [run["steps"]["AudioExampleGen"] for run in results["runs"]]
    assert all(step["samples"] > 0 and step["peak_mib"] >= step["launcher_peak_mib"] > 100 for step in ingestion)
