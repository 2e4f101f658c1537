"""One extended M3U playlist per predicted genre, absolute paths, UTF-8."""
from __future__ import annotations

import os
import shutil

import numpy as np

from tagging import playlists
from tests.testkit.library_files import encode


def test_one_playlist_per_genre_with_extinf_lines_and_absolute_paths(tmp_path):
    music = tmp_path / "música"
    rate = 8000
    first = encode(music / "b side", np.zeros(rate * 3, np.float32), rate, "flac")
    shutil.copy(first, music / "a side.flac")
    rows = [{"path": "b side.flac", "genre": "jazz", "seconds": 3.0},
            {"path": "a side.flac", "genre": "jazz", "seconds": 3.0},
            {"path": "gone.wav", "genre": "Hip/Hop: live", "seconds": 12.4}]
    os.makedirs(tmp_path / "out" / playlists.PLAYLIST_DIR)
    (tmp_path / "out" / playlists.PLAYLIST_DIR / "polka.m3u8").write_text("#EXTM3U\n")  # an earlier run's genre
    written = playlists.write(rows, lambda rel: str(music / rel), str(tmp_path / "out"))
    assert sorted(os.path.basename(p) for p in written.values()) == ["Hip_Hop_ live.m3u8", "jazz.m3u8"]
    assert not (tmp_path / "out" / playlists.PLAYLIST_DIR / "polka.m3u8").exists()
    assert open(written["jazz"], encoding="utf-8").read().splitlines() == [
        "#EXTM3U", "#PLAYLIST:jazz",
        "#EXTINF:3,a side", str(music / "a side.flac"),
        "#EXTINF:3,b side", str(music / "b side.flac")]
    assert open(written["Hip/Hop: live"], encoding="utf-8").read().splitlines()[2:] == [
        "#EXTINF:12,gone", str(music / "gone.wav")]  # not readable: the decoded length stands in
