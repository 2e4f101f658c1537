"""Entries named like audio that are not readable files: each kind gets its own reason, nothing raises."""
from __future__ import annotations

import os
import socket

import pytest

from audio import filecheck
from tests.testkit.audio_files import refused_as_root


def test_a_regular_readable_file_has_no_problem(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    assert filecheck.check(str(tmp_path / "a.wav")) is None
    (tmp_path / "link.wav").symlink_to("a.wav")  # a link to a good file is fine
    assert filecheck.check(str(tmp_path / "link.wav")) is None


@pytest.mark.parametrize("kind,reason,words", [
    ("dangling", filecheck.BROKEN_LINK, "does not exist"),
    ("loop", filecheck.LINK_LOOP, "loop"),
    ("folder", filecheck.IS_DIRECTORY, "folder"),
    ("fifo", filecheck.SPECIAL_FILE, "FIFO"),
    ("socket", filecheck.SPECIAL_FILE, "socket"),
])
def test_each_kind_of_non_file_has_its_reason(tmp_path, kind, reason, words):
    path = tmp_path / "x.wav"
    if kind == "dangling":
        path.symlink_to(tmp_path / "nowhere.wav")
    elif kind == "loop":
        (tmp_path / "y.wav").symlink_to("x.wav")
        path.symlink_to("y.wav")
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opening it would block: check() must not
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    problem = filecheck.check(str(path))
    assert problem is not None and problem.reason == reason and words in problem.detail


def test_an_unreadable_file_is_unreadable(tmp_path):
    path = tmp_path / "locked.wav"
    path.write_bytes(b"RIFF")
    path.chmod(0)
    with refused_as_root(path):  # as root, chmod 000 alone does not stop reading: see refused_as_root
        problem = filecheck.check(str(path))
    assert problem == filecheck.Problem(filecheck.UNREADABLE, "cannot read the file: Permission denied")


def test_remote_paths_are_left_to_the_decoder():
    assert filecheck.check("gs://bucket/blues/blues.00000.wav") is None
