"""The page's pictures: genre bars, the per-segment timeline, the waveform, the log-mel.

The log-mel is for display only; the model computes its own features in its graph.
"""
from __future__ import annotations

import io

import altair as alt
import numpy as np
import pandas as pd

ACCENT = "#e4572e"
MUTED = "#9aa5b1"
DISPLAY_MELS = 128
DISPLAY_HOP = 512


def genre_bars(ranked: list[tuple[str, float]]) -> alt.Chart:
    """All genres, best first; the winner in the accent colour."""
    frame = pd.DataFrame(ranked, columns=["genre", "probability"])
    frame["top"] = frame.index == 0
    return alt.Chart(frame).mark_bar(cornerRadiusEnd=3).encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
        y=alt.Y("genre:N", sort=None, title=None),
        color=alt.condition("datum.top", alt.value(ACCENT), alt.value(MUTED)),
        tooltip=["genre", alt.Tooltip("probability:Q", format=".1%")]).properties(height=28 * len(ranked))


def segment_timeline(segment_scores: np.ndarray, genres: tuple[str, ...], hop_seconds: float) -> alt.Chart:
    """Heat map of each segment's probabilities, with a dot on the genre that segment voted for."""
    count = segment_scores.shape[0]
    rows = [{"start": i * hop_seconds, "end": i * hop_seconds + hop_seconds, "genre": g,
             "probability": float(segment_scores[i, j]), "voted": j == int(np.argmax(segment_scores[i]))}
            for i in range(count) for j, g in enumerate(genres)]
    frame = pd.DataFrame(rows)
    base = alt.Chart(frame).encode(y=alt.Y("genre:N", sort=list(genres), title=None))
    heat = base.mark_rect().encode(
        x=alt.X("start:Q", title="seconds into the clip", scale=alt.Scale(domain=[0, count * hop_seconds])),
        x2="end:Q",
        color=alt.Color("probability:Q", scale=alt.Scale(domain=[0, 1], range=["#f5f7fa", ACCENT]), legend=None),
        tooltip=[alt.Tooltip("start:Q", title="segment starts at (s)"), "genre",
                 alt.Tooltip("probability:Q", format=".1%")])
    frame_voted = frame[frame["voted"]].assign(middle=lambda f: (f["start"] + f["end"]) / 2)
    dots = alt.Chart(frame_voted).mark_circle(size=40, color="#1f2933").encode(
        x="middle:Q", y=alt.Y("genre:N", sort=list(genres)))
    return (heat + dots).properties(height=28 * len(genres))


def waveform_chart(waveform: np.ndarray, sample_rate: int, points: int = 1200) -> alt.Chart:
    """Min/max envelope over POINTS columns: a 30-s clip is 660k samples, too many to draw."""
    columns = max(1, min(points, waveform.size))
    usable = waveform[: waveform.size // columns * columns].reshape(columns, -1)
    seconds = np.arange(columns) * usable.shape[1] / sample_rate
    frame = pd.DataFrame({"seconds": seconds, "low": usable.min(axis=1), "high": usable.max(axis=1)})
    return alt.Chart(frame).mark_area(color="#3e7cb1", opacity=0.85).encode(
        x=alt.X("seconds:Q", title="seconds", scale=alt.Scale(domain=[0, waveform.size / sample_rate])),
        y=alt.Y("low:Q", title=None, scale=alt.Scale(domain=[-1, 1])), y2="high:Q").properties(height=160)


def log_mel_png(waveform: np.ndarray, sample_rate: int) -> bytes:
    """The clip's log-mel spectrogram (librosa, display only) as a PNG."""
    import librosa
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mel = librosa.feature.melspectrogram(y=waveform, sr=sample_rate, n_fft=2048, hop_length=DISPLAY_HOP,
                                         n_mels=DISPLAY_MELS)
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    fig, ax = plt.subplots(figsize=(10, 2.6), dpi=100)
    seconds = waveform.size / sample_rate
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=[0, seconds, 0, DISPLAY_MELS])
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel band")
    fig.colorbar(image, ax=ax, format="%+.0f dB", pad=0.01)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
