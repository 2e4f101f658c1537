"""Labels from tags and manifests: normalised names, tags of every kind, manifest errors, exclusion records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio import labels
from audio.discovery import discover
from config.settings import GENRES, LabelsConfig
from tests.testkit.library_files import encode, tag

SHORT = (0.2 * np.sin(np.arange(4410) * 0.05)).astype(np.float32)


def _genre_tag(path: str):
    """The file's own genre tag as written (ID3v1 numbers as names), or None."""
    tags = labels.read_tags(path)
    return tags.genre if tags else None


@pytest.mark.parametrize("raw, name", [
    ("Hip-Hop", "hiphop"), ("hip hop", "hiphop"), ("HIP_HOP", "hiphop"), ("Hip Hop/Rap", "hiphop"),
    ("(17)", "rock"), ("17", "rock"), ("(7)Hip-Hop", "hiphop"), ("Rock & Roll", "rockandroll"),
    ("rock and roll", "rockandroll"), ("Jazz; Blues", "jazz"), ("Pop, Rock", "pop"), ("  ", ""),
])
def test_names_are_normalised(raw, name):
    assert labels.normalise(raw) == name


def test_names_take_the_label_sets_spelling_and_the_genre_maps_synonyms():
    names = labels.Names(("hip-hop", "rock", "classical"), genre_map=[("Rap", "hip-hop"), ("Orchestral", "Classical")])
    assert [names(raw) for raw in ("Hip Hop/Rap", "rap", "ORCHESTRAL", "(17)", "Rock & Roll", None)] == [
        "hip-hop", "hip-hop", "classical", "rock", "rockandroll", ""]


def library(root: Path) -> dict[str, Path]:
    """One file per kind of tag, and two without a genre."""
    files = {}
    for name, fmt, version, genre in (("v23", "mp3", 3, "Hip-Hop"), ("v24", "mp3", 4, "hip hop/rap"),
                                      ("v1", "mp3", 1, "Rock"), ("vorbis", "flac", 0, "Jazz; Blues"),
                                      ("wav", "wav", 4, "Rock & Roll"), ("untagged", "flac", 0, None)):
        path = encode(root / "Artist" / "Album" / f"{name}", SHORT, 22050, fmt)
        if genre is not None:
            tag(path, genre=genre, artist="Artist", album="Album", id3_version=version)
        files[name] = path
    files["no_tags"] = encode(root / "Other" / "no_tags", SHORT, 22050, "wav")
    return files


def test_tags_of_every_kind_are_read(tmp_path):
    files = library(tmp_path)
    read = {name: _genre_tag(str(path)) for name, path in files.items()}
    assert read == {"v23": "Hip-Hop", "v24": "hip hop/rap", "v1": "Rock", "vorbis": "Jazz; Blues",
                    "wav": "Rock & Roll", "untagged": None, "no_tags": None}
    assert labels.read_tags(str(files["v23"])) == labels.Tags("Hip-Hop", "Artist", "Album")


def test_tags_label_files_at_any_depth_and_record_each_file_they_leave_out(tmp_path):
    library(tmp_path)
    config = LabelsConfig(source=labels.TAGS, min_tracks_per_genre=2)
    found = discover(str(tmp_path), "*/*", GENRES, config)
    # rock, jazz and rockandroll have one track each: rare.
    assert {f.rel_path: (f.genre, f.track_id, f.list_key) for f in found.files} == {
        "Artist/Album/v23.mp3": ("hiphop", "Artist/Album/v23", "hiphop/v23"),
        "Artist/Album/v24.mp3": ("hiphop", "Artist/Album/v24", "hiphop/v24")}
    assert {e.rel_path: e.reason for e in found.excluded} == {
        "Artist/Album/v1.mp3": labels.RARE_GENRE, "Artist/Album/vorbis.flac": labels.RARE_GENRE,
        "Artist/Album/wav.wav": labels.RARE_GENRE, "Artist/Album/untagged.flac": labels.NO_GENRE_TAG,
        "Other/no_tags.wav": labels.NO_GENRE_TAG}
    assert found.files[0].tags == labels.Tags("Hip-Hop", "Artist", "Album")


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_manifest_labels_files_and_records_missing_and_unlisted_files(tmp_path):
    root = tmp_path / "root"
    for rel in ("A/X/01 a.wav", "A/X/02 b.wav", "B/Y/01 c.wav", "loose.wav"):
        encode(root / rel, SHORT, 22050, "wav")
    manifest = write(tmp_path / "m.csv", "path,genre,artist,album\nA/X/01 a.wav,Rock,A,X\n./A/X/02 b.wav,rock,A,X\n"
                                         "B\\Y\\01 c.wav,Hip-Hop,B,Y\ngone/01 z.wav,Jazz,,\n")
    config = LabelsConfig(source=labels.MANIFEST, manifest=manifest)
    found = discover(str(root), "*/*", GENRES, config)
    assert {f.rel_path: f.genre for f in found.files} == {"A/X/01 a.wav": "rock", "A/X/02 b.wav": "rock",
                                                          "B/Y/01 c.wav": "hiphop"}
    assert found.files[0].tags == labels.Tags("Rock", "A", "X")
    assert {e.rel_path: e.reason for e in found.excluded} == {"loose.wav": labels.NOT_IN_MANIFEST,
                                                              "gone/01 z.wav": labels.MANIFEST_FILE_MISSING}
    assert "line 5" in next(e.detail for e in found.excluded if e.rel_path == "gone/01 z.wav")


def test_a_parquet_manifest_reads_as_a_csv_one(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"path": ["a.wav", "b.flac"], "genre": ["Rock", None]}), path)
    rows = labels.read_manifest(path)
    assert rows["a.wav"].genre == "Rock" and rows["b.flac"].genre == "" and rows["b.flac"].line == 3


@pytest.mark.parametrize("text, message", [
    ("file,genre\na.wav,rock\n", r"no column path.*line 1"),
    ("path,genre\na.wav\n", r"has 1 value\(s\) where the header names 2.*line 2"),
    ("path,genre\na.wav,rock\n./a.wav,jazz\n", r"lists a.wav twice \(lines 2 and 3\)"),
    ("path,genre\n../a.wav,rock\n", r"not a path inside the data root.*line 2"),
])
def test_manifest_errors_name_the_file_the_line_and_the_fix(tmp_path, text, message):
    path = write(tmp_path / "m.csv", text)
    with pytest.raises(labels.ManifestError, match=message) as error:
        labels.read_manifest(path)
    assert str(path) in error.value.paragraph() and "Fix:" in error.value.paragraph()


def test_a_missing_manifest_and_a_bad_genre_map_are_clear_errors(tmp_path):
    with pytest.raises(labels.ManifestError, match="does not exist"):
        labels.read_manifest(str(tmp_path / "none.csv"))
    assert labels.read_genre_map(write(tmp_path / "g.csv", "synonym,genre\nrap,hiphop\n")) == (("rap", "hiphop"),)
    with pytest.raises(labels.ManifestError, match=r"line 2") as error:
        labels.read_genre_map(write(tmp_path / "bad.csv", "rap,hiphop\nrock\n"))
    assert "synonym and its genre" in error.value.paragraph()


def test_the_labels_flag_names_its_source():
    assert [labels.source_of(x) for x in ("folders", "tags", "lib.CSV", "x.parquet")] == [
        "folders", "tags", "manifest", "manifest"]
    with pytest.raises(ValueError, match="folders, tags, or a manifest"):
        labels.source_of("genre.txt")


def test_the_labels_section_travels_as_json_to_the_components():
    from config.settings import INGESTION_SECTIONS, PipelineConfig

    config = PipelineConfig()
    config.labels = LabelsConfig(source=labels.MANIFEST, manifest="gs://bucket/labels.csv", manifest_sha256="ab",
                                 genre_map=(("rap", "hiphop"),), min_tracks_per_genre=3)
    again = PipelineConfig.from_json(config.to_json(INGESTION_SECTIONS))
    assert again.labels == config.labels and again.labels.genre_map == (("rap", "hiphop"),)
