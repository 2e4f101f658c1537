"""The feature benchmark's report: ratios and the 3x-goal budget come from the run's own times."""
from bench import features as bench

METHODS = ("log_mel: graph", "log_mel: librosa", bench.PROFILE_STFT, bench.PROFILE_FRAMING, bench.PROFILE_RFFT)


def run(times_ms: dict[str, float]) -> dict:
    """A worker result for 60 s of audio whose per-30-s times are ``times_ms``."""
    return {"audio_seconds": 60.0, "source": "test clips", "load": [0.0, 0.0], "versions": {"x": "1"},
            "times": {name: {"best": 2 * ms / 1000, "median": 2 * ms / 1000} for name, ms in times_ms.items()}}


def test_report_gives_ratio_and_budget_from_the_measured_times():
    one = run({"log_mel: graph": 10.0, "log_mel: librosa": 24.0, bench.PROFILE_STFT: 8.0,
               bench.PROFILE_FRAMING: 3.0, bench.PROFILE_RFFT: 5.0})
    text = bench.report(one, one)
    assert "| log_mel: graph | 3,000x (3,000x) | 3,000x | 2.40x (2.40x) |" in text
    assert "librosa's log-mel takes 24.0 ms, so the graph would have 8.0 ms" in text
    assert "takes 5.0 ms on ready frames, leaving 3.0 ms" in text
    assert "framing and window alone take 3.0 ms. The whole graph takes 10.0 ms (2.40x librosa)." in text


def test_budget_can_be_negative_when_the_fft_alone_is_too_slow():
    one = run({"log_mel: graph": 10.0, "log_mel: librosa": 12.0, bench.PROFILE_STFT: 8.0,
               bench.PROFILE_FRAMING: 3.0, bench.PROFILE_RFFT: 5.0})
    assert "leaving -1.0 ms" in bench.goal_budget(one)
