"""A deterministic, GTZAN-shaped synthetic music collection: the default data set of ``local_runner.py`` and
the tests, since GTZAN itself cannot be downloaded here and must never be committed.

Each genre's recipe differs in tempo, rhythm, timbre, harmony and noise, so a model has something real to learn.
Each track is seeded from (seed, genre, track), so it can be regenerated alone and the same arguments give the same
bytes. Every distinct chord, note and drum hit is rendered once and copied where it is struck: no per-sample
Python. :func:`generate_library` writes the same tracks in a music library's shape.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import soundfile as sf

from config.settings import GENRES


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


GENERATOR_VERSION = 3  # bump when the rendering changes: a set written by another version is rewritten
MANIFEST = "MANIFEST.json"  # written last: its presence marks a complete set
STAMP = ".generating.json"  # written first: the set being generated, so a killed run resumes it
TABLE_SIZE = 4096  # samples in one period of a wavetable
NOISE_TABLE_SIZE = 2 ** 17
ORPHAN_SECONDS = 600  # a temporary file this old belongs to no live generator
DRUM_SECONDS = {"kick": 0.25, "snare": 0.25, "hat": 0.1}  # hit lengths (decays 0.12, 0.07, 0.02 s)


def _pattern(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("x")


class _Voice:
    """One track's instrument: a wavetable of the recipe's harmonics (none above Nyquist) read at each note's
    frequency, with vibrato, envelope and distortion; a chord's notes share the envelope and distortion."""

    def __init__(self, recipe: GenreRecipe, sr: int, rng: np.random.Generator):
        self.recipe, self.sr = recipe, sr
        self._phases = rng.uniform(0, 2 * np.pi, size=len(recipe.harmonics))
        self._tables: dict[int, np.ndarray] = {}
        self._clocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _table(self, freq: float) -> np.ndarray:
        """One period of the harmonics that stay below Nyquist at ``freq``."""
        kept = sum(1 for k in range(1, len(self.recipe.harmonics) + 1) if freq * k < self.sr / 2)
        if kept not in self._tables:
            theta = np.arange(TABLE_SIZE) / TABLE_SIZE * 2 * np.pi
            ks = np.arange(1, kept + 1)[:, None]
            amps = np.asarray(self.recipe.harmonics[:kept])[:, None]
            self._tables[kept] = (amps * np.sin(ks * theta + self._phases[:kept, None])).sum(axis=0).astype(np.float32)
        return self._tables[kept]

    def _clock(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(time in seconds warped by the vibrato, envelope) for sounds of ``length`` samples."""
        if length not in self._clocks:
            r = self.recipe
            t = np.arange(length) / self.sr
            clock = t + r.vibrato / 12 * np.log(2) * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5) if r.vibrato else t
            envelope = np.minimum(1.0, t / (0.08 if r.vibrato else 0.005)) * np.exp(-t / r.decay)
            self._clocks[length] = (clock.astype(np.float32), envelope.astype(np.float32))
        return self._clocks[length]

    def sound(self, freqs: Sequence[float], length: int) -> np.ndarray:
        """The notes ``freqs`` struck together, ``length`` samples long."""
        clock, envelope = self._clock(length)
        wave = np.zeros(length, np.float32)
        for freq in freqs:
            index = (clock * np.float32(freq * TABLE_SIZE)).astype(np.int32) & (TABLE_SIZE - 1)
            wave += self._table(freq).take(index)
        wave *= envelope
        if d := self.recipe.distortion:
            wave = np.tanh(np.float32(d / len(freqs)) * wave) * np.float32(len(freqs) / np.tanh(d))
        return wave


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(DRUM_SECONDS[kind] * sr)) / sr
    if kind == "kick":
        freq = 50 + 90 * np.exp(-t / 0.03)
        hit = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12)
    elif kind == "snare":
        hit = (0.6 * rng.standard_normal(len(t)) + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.07)
    else:
        hit = 0.3 * np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.02)  # crude high-pass: hiss
    return hit.astype(np.float32)


def _overlay(out: np.ndarray, starts: np.ndarray, sounds: list[np.ndarray], which: np.ndarray,
             gains: Optional[np.ndarray] = None) -> None:
    """Add ``sounds[which[i]]`` (times ``gains[i]``) at ``starts[i]``: one slice add per event."""
    n = len(out)
    for i, (start, w) in enumerate(zip(starts.tolist(), which.tolist())):
        sound = sounds[w]
        end = min(n, start + len(sound))
        if start < end:
            out[start:end] += np.float32(1.0 if gains is None else gains[i]) * sound[: end - start]


@functools.lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    """2**17 samples (6 s at 22.05 kHz) of unit-variance Gaussian noise, the same in every process."""
    return np.random.default_rng(20240601).standard_normal(NOISE_TABLE_SIZE).astype(np.float32)


def _peak(x: np.ndarray) -> np.float32:
    return np.float32(max(x.max(), -x.min()) + 1e-9)


def render_track(genre: str, index: int, seconds: float = 30.0, sample_rate: int = 22050, seed: int = 0) -> np.ndarray:
    """Render one track as float32 in [-1, 1]; deterministic in (genre, index, seconds, rate, seed)."""
    recipe = RECIPES[genre]
    digest = hashlib.sha256(f"{seed}/{genre}/{index}".encode()).digest()  # one track regenerates alone
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    sr = sample_rate
    n = int(round(seconds * sr))
    tempo = rng.uniform(*recipe.tempo)
    step = 60.0 / tempo / 4  # a 16th note
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)  # A2 .. G#3
    progression = rng.choice([0, 5, 7, 3, 8, 10], size=4)
    melody_every = int(rng.integers(1, 3))
    voice = _Voice(recipe, sr, rng)

    steps = np.arange(int(seconds / step) + 1)
    starts = ((steps * step + recipe.swing * step * (steps % 2)) * sr).astype(np.int64)
    pos, bar = steps % 16, steps // 16
    chord_roots = root * 2 ** (progression / 12)  # one per bar of the 4-bar progression

    drums = np.zeros(n, np.float32)
    for kind, pattern in (("kick", recipe.kick), ("snare", recipe.snare), ("hat", recipe.hat)):
        hit = _pattern(pattern)[pos]
        sound = _drum(kind, sr, rng)
        _overlay(drums, starts[hit], [sound], np.zeros(hit.sum(), np.int64), rng.uniform(0.8, 1.0, hit.sum()))

    music = np.zeros(n, np.float32)
    # Chords: each of the progression's four chords rendered once, struck where chord_steps says.
    chord_len = int((4 * step + recipe.decay) * sr)
    chords = [np.float32(0.25) * voice.sound([r * 2 ** (1 + i / 12) for i in recipe.chord], chord_len)
              for r in chord_roots]
    struck = _pattern(recipe.chord_steps)[pos]
    _overlay(music, starts[struck], chords, bar[struck] % 4)
    if recipe.bass:  # on the beat: a decaying sine on one of the scale's first three degrees
        on_beat = pos % 4 == 0
        bass_len = int(3.5 * step * sr)
        t = np.arange(bass_len, dtype=np.float32) / np.float32(sr)
        decay = np.float32(0.5) * np.exp(-t / np.float32(0.3))
        degrees = np.asarray(recipe.scale[:3])
        basses = [np.sin(np.float32(2 * np.pi * r * 2 ** (d / 12) / 2) * t) * decay for r in chord_roots for d in degrees]
        choice = rng.integers(0, len(degrees), on_beat.sum())
        _overlay(music, starts[on_beat], basses, (bar[on_beat] % 4) * len(degrees) + choice)
    # Melody: every melody_every 8ths, 70 % of the time, a scale note two octaves above the root.
    played = (steps % (2 * melody_every) == 0) & (rng.random(len(steps)) < 0.7)
    melody_len = int((2 * step + recipe.decay) * sr)
    notes = [np.float32(0.2) * voice.sound([root * 2 ** (2 + d / 12)], melody_len) for d in recipe.scale]
    _overlay(music, starts[played], notes, rng.integers(0, len(notes), played.sum()))

    # Mix in place: music and drums at their peaks (drums at the recipe's level), noise, a random level.
    music *= 1 / _peak(music)
    drums *= np.float32(recipe.drums) / _peak(drums)
    music += drums
    # White noise from the shared table at a random offset (cheaper than drawing it; it repeats every 6 s).
    level = np.float32(recipe.noise * rng.uniform(0.5, 1.5) * 3)
    music += np.resize(np.roll(_noise_table(), -int(rng.integers(0, NOISE_TABLE_SIZE))) * level, n)
    music *= np.float32(rng.uniform(0.5, 0.9)) / _peak(np.abs(music))
    return music


def _set_description(tracks_per_genre: int, seconds: float, seed: int, sample_rate: int,
                     genres: tuple[str, ...], **library) -> dict:
    """What the manifest records of a set; ``library``: generate_library's layout settings."""
    return {"generator_version": GENERATOR_VERSION, "tracks_per_genre": tracks_per_genre, "seconds": seconds,
            "seed": seed, "sample_rate": sample_rate, "genres": list(genres),
            **({"layout": "library", **library} if library else {})}


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _atomic_write(path: Path, write: Callable[[str], None], tmp_dir: Optional[Path] = None) -> None:
    """``write(temp_path)`` to a unique temporary file in ``tmp_dir`` (same filesystem; default beside ``path``),
    then rename it over ``path``: readers see the old or the whole new file, and writers never share a temp file."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_json(path: Path, data: dict) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True)))


def _remove_orphans(out: Path) -> None:
    """Delete temporary files older than ORPHAN_SECONDS: a live writer renames its file within a second."""
    now = time.time()
    for tmp in out.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > ORPHAN_SECONDS:
                tmp.unlink()


def _flat_tracks(out: Path, tracks_per_genre: int, genres: tuple[str, ...]) -> list[tuple[Path, str, int]]:
    """(path, genre, index) of every track of the GTZAN-shaped layout."""
    return [(out / g / f"{g}.{i:05d}.wav", g, i) for g in genres for i in range(tracks_per_genre)]


def _is_set_complete(out: Path, description: dict) -> bool:
    manifest = _read_json(out / MANIFEST)
    if not manifest or manifest.get("set") != description:
        return False
    try:
        return all((out / name).stat().st_size == size for name, size in manifest["files"].items())
    except (OSError, KeyError, AttributeError):
        return False


def is_complete(out_dir: str | Path, tracks_per_genre: int = 20, seconds: float = 30.0, seed: int = 0,
                sample_rate: int = 22050, genres: tuple[str, ...] = GENRES) -> bool:
    """Whether ``out_dir`` holds this exact set, finished: the manifest matches and every file has its size."""
    return _is_set_complete(Path(out_dir), _set_description(tracks_per_genre, seconds, seed, sample_rate, genres))


def _write_set(out: Path, tracks: list[tuple[Path, str, int]], description: dict,
               progress: Optional[Callable[[int, int], None]] = None) -> list[Path]:
    """Render and write ``tracks`` (path, genre, index) as ``description`` says, or return at once when the set is
    complete. Atomic writes let two runs generate one set at once and leave no half-written clip. The manifest is
    written last; a set without it is resumed, keeping tracks in place when the stamp matches these settings."""
    seconds, sample_rate, seed = description["seconds"], description["sample_rate"], description["seed"]
    channels, audio_format = description.get("channels", 1), LIBRARY_FORMATS[description.get("format", "wav")]
    paths = [path for path, _, _ in tracks]
    if _is_set_complete(out, description):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    _remove_orphans(out)
    resume = _read_json(out / STAMP) == description
    if not resume:
        _write_json(out / STAMP, description)
    for done, (path, genre, index) in enumerate(tracks, start=1):
        if not (resume and path.exists()):
            path.parent.mkdir(parents=True, exist_ok=True)
            # 16-bit here, not in libsndfile: its float conversion costs twice the whole write.
            pcm = np.rint(render_track(genre, index, seconds, sample_rate, seed) * np.float32(32767)).astype(np.int16)
            if channels == 2:  # the same performance, the right channel a little quieter: a panned mix
                pcm = np.stack([pcm, (pcm.astype(np.int32) * 7 // 8).astype(np.int16)], axis=1)
            # Temporary files go to the set's root, not the genre folder: ExampleGen reads <root>/*/*.
            _atomic_write(path, lambda tmp: sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format=audio_format), out)
        if progress:
            progress(done, len(paths))
    files = {p.relative_to(out).as_posix(): p.stat().st_size for p in paths}
    _write_json(out / MANIFEST, {"set": description, "files": files})
    return paths


def generate(out_dir: str | Path, tracks_per_genre: int = 20, seconds: float = 30.0, seed: int = 0,
             sample_rate: int = 22050, genres: tuple[str, ...] = GENRES,
             progress: Optional[Callable[[int, int], None]] = None) -> list[Path]:
    """Write ``<out>/<genre>/<genre>.NNNNN.wav`` (mono, 16-bit), atomically and resumably (:func:`_write_set`)."""
    out = Path(out_dir)
    return _write_set(out, _flat_tracks(out, tracks_per_genre, genres),
                      _set_description(tracks_per_genre, seconds, seed, sample_rate, genres), progress)


# Track titles by position on the album: every album's first track is "01 Intro", so file names
# repeat across albums and artists, as they do in real libraries.
TITLES = ("Intro", "Home", "Night Drive", "Interlude", "Rain", "Gold", "Silver Line", "Echoes", "Reprise", "Outro")
LIBRARY_FORMATS = {"wav": "WAV", "flac": "FLAC"}


def library_relative_path(genre: str, index: int, tracks_per_album: int, albums_per_artist: int,
                          extension: str = "wav") -> str:
    """``<genre>/<Genre> Artist K/Album J/NN Title.<ext>`` of a genre's ``index``-th track: a larger library has
    more artists, named per genre (ingestion groups an artist's tracks across genre folders)."""
    artist, position = divmod(index, tracks_per_album * albums_per_artist)
    album, number = divmod(position, tracks_per_album)
    return (f"{genre}/{genre.capitalize()} Artist {artist + 1}/Album {album + 1}/"
            f"{number + 1:02d} {TITLES[number % len(TITLES)]}.{extension}")


def generate_library(out_dir: str | Path, tracks_per_genre: int, seconds: float = 30.0, seed: int = 0,
                     sample_rate: int = 22050, genres: tuple[str, ...] = GENRES, tracks_per_album: int = 10,
                     albums_per_artist: int = 2, audio_format: str = "wav", channels: int = 1,
                     progress: Optional[Callable[[int, int], None]] = None) -> list[Path]:
    """The tracks of :func:`generate` laid out as a music library (:func:`library_relative_path`), with file names
    repeating across albums; stereo when ``channels`` is 2. Written like :func:`generate`."""
    if audio_format not in LIBRARY_FORMATS:
        raise ValueError(f"audio_format {audio_format!r}: use one of {', '.join(LIBRARY_FORMATS)}")
    if channels not in (1, 2) or tracks_per_album < 1 or albums_per_artist < 1:
        raise ValueError("channels must be 1 or 2, tracks_per_album and albums_per_artist at least 1")
    out = Path(out_dir)
    tracks = [(out / library_relative_path(g, i, tracks_per_album, albums_per_artist, audio_format), g, i)
              for g in genres for i in range(tracks_per_genre)]
    return _write_set(out, tracks, _set_description(
        tracks_per_genre, seconds, seed, sample_rate, genres, tracks_per_album=tracks_per_album,
        albums_per_artist=albums_per_artist, format=audio_format, channels=channels), progress)


def is_library_complete(out_dir: str | Path, tracks_per_genre: int, seconds: float = 30.0, seed: int = 0,
                        sample_rate: int = 22050, genres: tuple[str, ...] = GENRES, tracks_per_album: int = 10,
                        albums_per_artist: int = 2, audio_format: str = "wav", channels: int = 1) -> bool:
    """:func:`is_complete` for a library written by :func:`generate_library` with these arguments."""
    return _is_set_complete(Path(out_dir), _set_description(
        tracks_per_genre, seconds, seed, sample_rate, genres, tracks_per_album=tracks_per_album,
        albums_per_artist=albums_per_artist, format=audio_format, channels=channels))
