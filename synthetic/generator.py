"""A deterministic, GTZAN-shaped synthetic music collection.

Writes ``<out>/<genre>/<genre>.NNNNN.wav`` (mono, 16-bit, 22050 Hz by default) for the
ten genres in :data:`pipeline.config.GENRES`. Each genre is a recipe that differs from
the others in tempo, rhythm (drum pattern and swing), timbre (harmonic profile,
distortion, envelope), harmony (scale and chord type) and noise, so that a model has
something real to learn; each track draws its own tempo, key, mix and noise from a
seed derived from (seed, genre, track), so any track can be regenerated alone and the
same arguments always give the same bytes.

It is the default dataset of ``local_runner.py`` and of every CI test: GTZAN itself
cannot be downloaded here and must never be committed.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import soundfile as sf

from pipeline.config import GENRES


@dataclasses.dataclass(frozen=True)
class GenreRecipe:
    tempo: tuple[float, float]       # BPM range
    kick: str                        # 16-step patterns: "x" hit, "." rest
    snare: str
    hat: str
    swing: float                     # delay of odd 16ths, fraction of a 16th
    harmonics: tuple[float, ...]     # amplitude of partials 1..n of the lead/chord voice
    chord: tuple[int, ...]           # semitones above the root
    scale: tuple[int, ...]           # melody scale
    chord_steps: str                 # where chords are struck in the bar
    decay: float                     # note decay time constant, seconds
    distortion: float                # tanh drive; 0 = clean
    noise: float                     # broadband noise level
    bass: bool
    vibrato: float                   # vibrato depth in semitones (strings)
    drums: float = 1.0               # drum level


RECIPES: dict[str, GenreRecipe] = {
    "blues": GenreRecipe((70, 90), "x.....x.x.......", "....x.......x...", "x..x..x..x..x..x", 0.33,
                         (1, .6, .4, .3, .2), (0, 4, 7, 10), (0, 3, 5, 6, 7, 10), "x.....x.........",
                         0.5, 0.8, 0.01, True, 0.3, 0.7),
    "classical": GenreRecipe((60, 80), "." * 16, "." * 16, "." * 16, 0.0,
                             (1, .5, .33, .25, .2, .16), (0, 4, 7, 12), (0, 2, 4, 5, 7, 9, 11), "x.......x.......",
                             1.2, 0.0, 0.002, False, 0.4, 0.0),
    "country": GenreRecipe((100, 120), "x.......x.......", "....x.......x...", "..x...x...x...x.", 0.0,
                           (1, .9, .7, .5, .4, .3, .2), (0, 4, 7), (0, 2, 4, 7, 9), "x...x...x...x...",
                           0.25, 0.0, 0.004, True, 0.0, 0.6),
    "disco": GenreRecipe((115, 130), "x...x...x...x...", "....x.......x...", "..x...x...x...x.", 0.0,
                         (1, .3, .1), (0, 3, 7, 10), (0, 3, 5, 7, 10), "x.x.x.x.x.x.x.x.",
                         0.15, 0.0, 0.004, True, 0.0, 1.0),
    "hiphop": GenreRecipe((80, 95), "x......xx.x.....", "....x.......x...", "x.x.x.x.x.x.x.x.", 0.15,
                          (1, .2), (0, 3, 7), (0, 3, 5, 7, 10), "x...............",
                          0.6, 0.2, 0.03, True, 0.0, 1.3),
    "jazz": GenreRecipe((120, 160), "x.........x.....", "......x.......x.", "x..xx..xx..xx..x", 0.4,
                        (1, .4, .2, .1), (0, 4, 7, 11, 14), (0, 2, 3, 5, 7, 9, 10), "x.....x...x.....",
                        0.4, 0.0, 0.006, True, 0.1, 0.5),
    "metal": GenreRecipe((150, 190), "xxxxxxxxxxxxxxxx", "....x.......x...", "x.x.x.x.x.x.x.x.", 0.0,
                         (1, .8, .8, .7, .6, .5, .5, .4), (0, 7, 12), (0, 1, 3, 5, 7, 8, 10), "x.x.x.x.x.x.x.x.",
                         0.3, 6.0, 0.05, True, 0.0, 1.1),
    "pop": GenreRecipe((100, 125), "x.......x.x.....", "....x.......x...", "x.x.x.x.x.x.x.x.", 0.0,
                       (1, .1, .3, .05, .15), (0, 4, 7, 12), (0, 2, 4, 7, 9, 11), "x...x...x...x...",
                       0.35, 0.0, 0.004, True, 0.0, 0.9),
    "reggae": GenreRecipe((65, 80), "........x.......", "........x.......", "x.x.x.x.x.x.x.x.", 0.1,
                          (1, .5, .25), (0, 4, 7), (0, 2, 4, 5, 7, 9), "..x...x...x...x.",
                          0.12, 0.0, 0.005, True, 0.0, 0.8),
    "rock": GenreRecipe((110, 140), "x.......x.x.....", "....x.......x...", "x.x.x.x.x.x.x.x.", 0.0,
                        (1, .7, .5, .4, .3, .2), (0, 7, 12), (0, 2, 3, 5, 7, 9, 10), "x.x.x.x.x.x.x.x.",
                        0.5, 2.5, 0.02, True, 0.0, 1.0),
}
assert set(RECIPES) == set(GENRES), "every genre needs a recipe"


def _track_rng(seed: int, genre: str, index: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{genre}/{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _add(out: np.ndarray, start: int, sound: np.ndarray) -> None:
    end = min(len(out), start + len(sound))
    if start < end:
        out[start:end] += sound[: end - start]


def _tone(freq: float, seconds: float, sr: int, recipe: GenreRecipe, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    if recipe.vibrato:
        phase_mod = recipe.vibrato / 12 * np.log(2) * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5)
        phase = 2 * np.pi * freq * (t + phase_mod)
    else:
        phase = 2 * np.pi * freq * t
    wave = np.zeros_like(t)
    for k, amp in enumerate(recipe.harmonics, start=1):
        if freq * k < sr / 2:
            wave += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    attack = np.minimum(1.0, t / (0.08 if recipe.vibrato else 0.005))
    wave *= attack * np.exp(-t / recipe.decay)
    if recipe.distortion:
        wave = np.tanh(recipe.distortion * wave) / np.tanh(recipe.distortion)
    return wave


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    if kind == "kick":
        freq = 50 + 90 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12)
    if kind == "snare":
        return (0.6 * rng.standard_normal(len(t)) + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.07)
    noise = np.diff(rng.standard_normal(len(t) + 1))  # crude high-pass: a hi-hat's hiss
    return 0.3 * noise * np.exp(-t / 0.02)


def render_track(genre: str, index: int, seconds: float = 30.0, sample_rate: int = 22050,
                 seed: int = 0) -> np.ndarray:
    """Render one track as float32 in [-1, 1]; deterministic in (genre, index, seconds, rate, seed)."""
    recipe = RECIPES[genre]
    rng = _track_rng(seed, genre, index)
    n = int(round(seconds * sample_rate))
    drums = np.zeros(n)
    music = np.zeros(n)
    tempo = rng.uniform(*recipe.tempo)
    step = 60.0 / tempo / 4  # a 16th note
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)  # A2 .. G#3
    hits = {kind: _drum(kind, sample_rate, rng) for kind in ("kick", "snare", "hat")}
    progression = rng.choice([0, 5, 7, 3, 8, 10], size=4)
    melody_every = int(rng.integers(1, 3))
    n_steps = int(seconds / step) + 1
    for s in range(n_steps):
        when = s * step + (recipe.swing * step if s % 2 else 0.0)
        start = int(when * sample_rate)
        pos = s % 16
        bar = s // 16
        for kind, pattern in (("kick", recipe.kick), ("snare", recipe.snare), ("hat", recipe.hat)):
            if pattern[pos] == "x":
                _add(drums, start, hits[kind] * rng.uniform(0.8, 1.0))
        chord_root = root * 2 ** (progression[bar % 4] / 12)
        if recipe.chord_steps[pos] == "x":
            for interval in recipe.chord:
                _add(music, start, 0.25 * _tone(chord_root * 2 ** (1 + interval / 12), 4 * step + recipe.decay,
                                                sample_rate, recipe, rng))
        if recipe.bass and pos % 4 == 0:
            bass_note = chord_root * 2 ** (rng.choice(recipe.scale[:3]) / 12) / 2
            _add(music, start, 0.5 * np.sin(2 * np.pi * bass_note * np.arange(int(3.5 * step * sample_rate))
                                            / sample_rate) * np.exp(-np.arange(int(3.5 * step * sample_rate))
                                                                    / sample_rate / 0.3))
        if s % (2 * melody_every) == 0 and rng.random() < 0.7:
            note = root * 2 ** (2 + rng.choice(recipe.scale) / 12)
            _add(music, start, 0.2 * _tone(note, 2 * step + recipe.decay, sample_rate, recipe, rng))
    mix = music / (np.max(np.abs(music)) + 1e-9) + recipe.drums * drums / (np.max(np.abs(drums)) + 1e-9)
    mix += recipe.noise * rng.uniform(0.5, 1.5) * rng.standard_normal(n) * 3
    mix *= rng.uniform(0.5, 0.9) / (np.max(np.abs(mix)) + 1e-9)
    return mix.astype(np.float32)


def generate(out_dir: str | Path, tracks_per_genre: int = 20, seconds: float = 30.0, seed: int = 0,
             sample_rate: int = 22050, genres: tuple[str, ...] = GENRES,
             progress: Optional[Callable[[int, int], None]] = None) -> list[Path]:
    """Write the collection; files that already exist with the right content are kept."""
    out = Path(out_dir)
    paths = []
    total = len(genres) * tracks_per_genre
    for g, genre in enumerate(genres):
        (out / genre).mkdir(parents=True, exist_ok=True)
        for i in range(tracks_per_genre):
            path = out / genre / f"{genre}.{i:05d}.wav"
            if not path.exists():
                audio = render_track(genre, i, seconds, sample_rate, seed)
                tmp = path.with_suffix(".tmp.wav")
                sf.write(tmp, audio, sample_rate, subtype="PCM_16")
                tmp.rename(path)  # never leave a half-written clip behind
            paths.append(path)
            if progress:
                progress(g * tracks_per_genre + i + 1, total)
    return paths
