"""What a re-run does with each file, from real files and earlier results written as the tagger writes them."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import soundfile as sf

from tagging import incremental, outputs
from tagging.model import ModelRef

IDENTITY = {"version": "1", "fingerprint": "f", "sample_rate": 22050, "segment_seconds": 3.0, "hop_seconds": 3.0}


def earlier_results(out, rows, quarantined=()) -> None:
    out.mkdir(exist_ok=True)
    (out / outputs.JSONL_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / outputs.QUARANTINE_FILE).write_text("".join(json.dumps(q) + "\n" for q in quarantined))
    (out / outputs.SUMMARY_FILE).write_text(json.dumps({"model_identity": IDENTITY}))


def entry(path, rel, **extra) -> dict:
    st = os.stat(path)
    return {"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns, **extra}


def test_each_file_is_new_changed_moved_unchanged_or_removed(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    tone = lambda f: (0.3 * np.sin(2 * np.pi * f * np.arange(4410) / 22050)).astype(np.float32)  # noqa: E731
    for name, freq in (("same.flac", 220), ("changed.flac", 330), ("gone.flac", 440), ("moved.flac", 550)):
        sf.write(music / name, tone(freq), 22050)
    (music / "short.wav").write_bytes(b"RIFF")  # a quarantined file, unchanged
    (music / "bad.wav").write_bytes(b"RIFF")    # a quarantined file that changes
    hashes = {p.name: incremental.audio_hash(str(p)) for p in music.glob("*.flac")}
    rows = [entry(music / n, n, audio_sha256=hashes[n], tags="own") for n in hashes]
    earlier_results(tmp_path / "out", rows, [entry(music / n, n, reason="empty", detail="x")
                                             for n in ("short.wav", "bad.wav")])
    sf.write(music / "changed.flac", tone(660), 22050)
    (music / "gone.flac").unlink()
    os.makedirs(music / "elsewhere")
    shutil.move(music / "moved.flac", music / "elsewhere" / "renamed.flac")
    (music / "bad.wav").write_bytes(b"RIFF and more")
    sf.write(music / "new.flac", tone(770), 22050)
    files = [(str(music / rel), rel) for rel in ("bad.wav", "changed.flac", "elsewhere/renamed.flac", "new.flac",
                                                 "same.flac", "short.wav")]

    index, retag = incremental.read_index(str(tmp_path / "out"), IDENTITY)
    changes = incremental.compare(files, index)
    assert retag == "" and dict(changes.counts) == {"changed": 2, "moved": 1, "new": 1, "unchanged": 2, "removed": 1}
    assert sorted(rel for _, rel in changes.to_infer) == ["bad.wav", "changed.flac", "new.flac"]
    assert changes.carried == {"elsewhere/renamed.flac": "moved.flac", "same.flac": "same.flac",
                               "short.wav": "short.wav"}
    carried = {r["path"]: r for r in incremental.carried_records(str(tmp_path / "out"), changes)}
    assert carried["short.wav"]["status"] == outputs.QUARANTINED and carried["same.flac"]["tags"] == "own"
    assert carried["elsewhere/renamed.flac"]["audio_sha256"] == hashes["moved.flac"]


def test_another_model_or_retag_uses_no_earlier_result(tmp_path):
    earlier_results(tmp_path, [{"path": "a.wav", "size": 1, "mtime_ns": 1}])
    assert incremental.read_index(str(tmp_path), IDENTITY)[0] == {"a.wav": (1, 1, None, False)}
    assert incremental.read_index(str(tmp_path), IDENTITY, retag=True) == ({}, "--retag")
    index, reason = incremental.read_index(str(tmp_path), {**IDENTITY, "fingerprint": "g"})
    assert index == {} and "model differs" in reason
    assert incremental.read_index(str(tmp_path / "none"), IDENTITY) == ({}, "")


def test_a_model_is_known_by_its_files_wherever_it_lies(tmp_path):
    for folder in ("a/1", "b/7"):
        os.makedirs(tmp_path / folder / "variables")
        (tmp_path / folder / "saved_model.pb").write_bytes(b"graph")
        (tmp_path / folder / "variables" / "variables.index").write_bytes(b"checksums")
    same = [incremental.model_lib.fingerprint(ModelRef(str(tmp_path / f), "1", "saved-model")) for f in ("a/1", "b/7")]
    (tmp_path / "b/7/variables/variables.index").write_bytes(b"other weights")
    assert same[0] == same[1] != incremental.model_lib.fingerprint(ModelRef(str(tmp_path / "b/7"), "1", "saved-model"))
