"""A hostile data root: every planted entry has exactly one record with its expected fate, and
ingestion (AudioExampleGen's executor, real Beam) and the tagger (real Beam, the stand-in
SavedModel of tests/testkit/serving.py) agree file by file.

Agreement: an entry both exclude has the same reason; a file both decode has the same
fate (ingested = tagged, or quarantined with the same reason). Ingestion's label rules
(``unknown_genre``, ``duplicate_track``, ``duplicate_audio``, ``no_genre_folder``) have no
counterpart in the tagger, which has no labels and tags those files.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from audio import discovery
from components.audio_example_gen import quarantine
from components.audio_example_gen.conftest import IN_MEMORY, make_config, run_executor
from pipeline.beam_args import IN_PROCESS
from synthetic.generator import generate
from tagging import pipeline as tag_pipeline
from tagging.model import latest_version
from tests.testkit.audio_files import (RATE, TEST_AUDIO, corrupt_wav_bytes, refused_as_root, tone, truncated_wav_bytes,
                                 wav_bytes, with_header)
from tests.testkit.serving import build_stand_in_model

SECONDS = 3.5  # the stand-in model needs one 3-s segment; ingestion's test segments are 1 s
GOOD = "blues/blues.00000.wav"  # a synthetic track the duplicates copy


def encoded(fmt: str, subtype: str, freq: float, rate: int = RATE) -> Callable[[], bytes]:
    """A tone of its own frequency: two planted files with the same samples would be duplicate_audio."""
    def make() -> bytes:
        import io

        buffer = io.BytesIO()
        sf.write(buffer, tone(SECONDS, rate, freq=freq), rate, format=fmt, subtype=subtype)
        return buffer.getvalue()
    return make


def nan_wav() -> bytes:
    samples = tone(SECONDS)
    samples[100] = np.nan
    return wav_bytes(samples, subtype="FLOAT")


def flac_copy_of_good(root: Path, path: Path) -> None:
    samples, rate = sf.read(root / GOOD, dtype="int16")
    sf.write(path, samples, rate, subtype="PCM_16", format="FLAC")


def unreadable(path: Path) -> None:
    path.write_bytes(wav_bytes(tone(SECONDS)))
    path.chmod(0)


# rel path -> (maker, ingestion's fate). A maker with no argument returns bytes; one with (root, path)
# or (path) makes the entry. Fates: "ingested", or "<status>:<reason>".
PLANTED: dict[str, tuple[Callable, str]] = {
    # entries that are not readable files
    "rock/rock.90001.wav": (lambda p: p.symlink_to(p.parent / "no-such-file.wav"), "quarantined:broken_link"),
    "rock/rock.90002.wav": (lambda p: p.symlink_to(p.name), "quarantined:link_loop"),
    "jazz/jazz.90003.wav": (lambda p: p.mkdir(), "quarantined:is_directory"),
    "jazz/jazz.90004.wav": (os.mkfifo, "quarantined:special_file"),
    "pop/pop.90005.wav": (unreadable, "quarantined:unreadable"),
    "rock/album": (lambda p: p.symlink_to(p.parent.parent / "pop"), "excluded:linked_folder"),
    # contents ingestion refuses
    "blues/blues.90010.wav": (lambda: b"", "quarantined:empty"),
    "blues/blues.90011.wav": (lambda: b"liner notes, not audio\n" * 20, "quarantined:not_audio"),
    "jazz/jazz.90012.wav": (lambda: corrupt_wav_bytes(), "quarantined:undecodable"),
    "blues/blues.90013.wav": (lambda: with_header(wav_bytes(tone(0.1)), rate=1), "quarantined:bad_sample_rate"),
    "blues/blues.90014.wav": (lambda: with_header(wav_bytes(tone(0.1)), data_size=0xFFFFFFF0), "quarantined:too_long"),
    "disco/disco.90015.wav": (lambda: wav_bytes(tone(0.5)), "quarantined:too_short"),
    "disco/disco.90016.wav": (lambda: wav_bytes(np.zeros(int(SECONDS * RATE), np.float32)), "quarantined:silent"),
    "disco/disco.90017.wav": (lambda: wav_bytes(np.full(int(SECONDS * RATE), 0.5, np.float32), subtype="FLOAT"),
                              "quarantined:silent"),  # DC only
    "disco/disco.90018.wav": (lambda: wav_bytes((1e-4 * np.random.default_rng(1).standard_normal(
        int(SECONDS * RATE))).astype(np.float32), subtype="FLOAT"), "quarantined:silent"),  # -80 dBFS hiss
    "metal/metal.90019.wav": (nan_wav, "quarantined:non_finite"),
    "metal/metal.90020.wav": (lambda: wav_bytes(tone(SECONDS) * 1075.0, subtype="FLOAT"), "quarantined:out_of_range"),
    "metal/metal.90021.wav": (lambda: wav_bytes(np.tile(tone(0.01)[:, None], (1, 65))),  # 65 channels
                              "quarantined:implausible_header"),
    # good audio in every form ingestion reads
    "disco/disco.90030.wav": (lambda: truncated_wav_bytes(claimed_seconds=6.0, kept_seconds=SECONDS), "ingested"),
    "classical/classical.90031.wav": (lambda: wav_bytes(tone(SECONDS, 44100, freq=470), 44100), "ingested"),
    "country/country.90032.wav": (lambda: wav_bytes(np.stack([tone(SECONDS), tone(SECONDS, freq=660)], 1)),
                                  "ingested"),
    "country/country.90033.flac": (encoded("FLAC", "PCM_16", 480), "ingested"),
    "hiphop/hiphop.90034.ogg": (encoded("OGG", "VORBIS", 490), "ingested"),
    "hiphop/hiphop.90035.mp3": (encoded("MP3", "MPEG_LAYER_III", 500), "ingested"),
    "reggae/reggae.90036.au": (encoded("AU", "PCM_16", 510), "ingested"),
    "reggae/reggae.90037.wav": (encoded("WAV", "PCM_24", 520), "ingested"),
    "reggae/reggae.90038.wav": (lambda: wav_bytes(tone(SECONDS, freq=530) * 3.2, subtype="FLOAT"), "ingested"),
    "rock/rock.90039.wav": (lambda: wav_bytes(tone(SECONDS, freq=540) + 0.3), "ingested"),  # on a DC offset
    "rock/rock.90040.WAV": (lambda: wav_bytes(tone(SECONDS, freq=560)), "ingested"),
    "pop/sub/pop.90041.wav": (lambda: wav_bytes(tone(SECONDS, freq=330)), "ingested"),
    "pop/a/b/pop.90042.flac": (encoded("FLAC", "PCM_16", 550), "ingested"),
    "jazz/café 90043.wav": (lambda: wav_bytes(tone(SECONDS, freq=220)), "ingested"),
    "metal/metal.90044.wav": (lambda: wav_bytes(tone(60.0, amplitude=0.3)), "ingested"),  # cut to 20 segments
    # label rules of ingestion only
    "polka/polka.90050.wav": (lambda: wav_bytes(tone(SECONDS, freq=300)), "quarantined:unknown_genre"),
    "jazz/jazz.90051.flac": (encoded("FLAC", "PCM_16", 350), "ingested"),  # one path, two extensions: the
    "jazz/jazz.90051.wav": (lambda: wav_bytes(tone(SECONDS, freq=360)), "quarantined:duplicate_track"),  # first
    "blues/blues.90052.wav": (lambda root, p: shutil.copyfile(root / GOOD, p), "quarantined:duplicate_audio"),
    "metal/metal.90053.flac": (flac_copy_of_good, "quarantined:duplicate_audio"),
    "rock/rock.90054.wav": (lambda root, p: p.symlink_to(root / GOOD), "quarantined:duplicate_audio"),
    "reggae/reggae.90055.wav": (lambda root, p: os.link(root / GOOD, p), "quarantined:duplicate_audio"),
    "loose.wav": (lambda: wav_bytes(tone(SECONDS, freq=250)), "excluded:no_genre_folder"),
    # never read
    "rock/.hidden.wav": (lambda: wav_bytes(tone(SECONDS)), "excluded:hidden"),
    "rock/.wav": (lambda: wav_bytes(tone(SECONDS)), "excluded:hidden"),
    ".polka/polka.90062.wav": (lambda: wav_bytes(tone(SECONDS)), "excluded:hidden"),
    "jazz/.DS_Store": (lambda: b"\0\0\0\1Bud1", "excluded:hidden"),
    "rock/ .wav": (lambda: wav_bytes(tone(SECONDS)), "excluded:no_name"),
    "rock/cover.jpg": (lambda: b"\xff\xd8\xff\xe0 not really a jpeg", "excluded:not_audio_extension"),
    "README.txt": (lambda: b"about this collection\n", "excluded:not_audio_extension"),
    "rock/track": (lambda: wav_bytes(tone(SECONDS)), "excluded:not_audio_extension"),
}
TAGGER_ONLY_RULES = {"unknown_genre", "duplicate_track", "duplicate_audio", "no_genre_folder"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-root")
    generate(root, tracks_per_genre=2, seconds=SECONDS, seed=0)
    for rel, (make, _) in PLANTED.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        arity = make.__code__.co_argcount if hasattr(make, "__code__") else 1
        if arity == 0:
            path.write_bytes(make())
        elif arity == 1:
            make(path)
        else:
            make(root, path)
    model_base = tmp_path_factory.mktemp("serving") / "genre"
    build_stand_in_model(model_base, version=1)
    out = tmp_path_factory.mktemp("hostile-out")
    with refused_as_root(root / "pop/pop.90005.wav"):
        _, report, error = run_executor(root, make_config(max_bad_fraction=0.9), out / "ingest", IN_MEMORY)
        summary = tag_pipeline.tag(str(root), str(out / "tags"), latest_version(str(model_base)),
                                   beam_args=IN_PROCESS, audio=TEST_AUDIO, batch_size=8)
    records = [json.loads(line) for line in (Path(report.uri) / quarantine.FILES_FILE).read_text().splitlines()]
    return root, records, error, summary


def test_at_least_40_kinds_are_planted():
    assert len(PLANTED) >= 40  # one entry per kind (the comment above each group names them)


def test_every_entry_has_exactly_one_record_with_its_expected_fate(hostile):
    root, records, error, _ = hostile
    assert error is None, error
    paths = [r["path"] for r in records]
    assert len(paths) == len(set(paths))
    assert set(paths) == {e.rel_path for e in discovery.walk(str(root))}  # nothing the walk meets is lost
    fates = {r["path"]: "ingested" if r["status"] == "ingested" else f"{r['status']}:{r['reason']}" for r in records}
    assert {rel: fates.get(rel) for rel in PLANTED} == {rel: fate for rel, (_, fate) in PLANTED.items()}
    for rel in ("blues/blues.90052.wav", "metal/metal.90053.flac", "rock/rock.90054.wav", "reggae/reggae.90055.wav"):
        assert GOOD in next(r["detail"] for r in records if r["path"] == rel)
    synthetic = [r for r in records if r["path"].endswith(".wav") and r["path"].split("/")[-1][-9:-4].isdigit()
                 and r["path"].split("/")[-1].split(".")[1] < "90000"]
    assert len(synthetic) == 20 and all(r["status"] == "ingested" for r in synthetic)


def test_ingestion_and_the_tagger_agree_file_by_file(hostile):
    _, records, _, summary = hostile
    tagger: dict[str, str] = {e["path"]: f"excluded:{e['reason']}" for e in summary["excluded"]}
    tagger.update({q["path"]: f"quarantined:{q['reason']}" for q in summary["quarantined"]})
    assert summary["files"]["listed"] + len(summary["excluded"]) == len(records)
    for r in records:
        fate = "ingested" if r["status"] == "ingested" else f"{r['status']}:{r['reason']}"
        expected = ("tagged" if fate == "ingested" or r["reason"] in TAGGER_ONLY_RULES
                    or r["reason"] in ("not in split lists",) else fate)
        assert tagger.get(r["path"], "tagged") == expected, (r["path"], fate)
    assert summary["files"]["tagged"] == sum(1 for r in records if r["status"] == "ingested"
                                             or r["reason"] in TAGGER_ONLY_RULES)
