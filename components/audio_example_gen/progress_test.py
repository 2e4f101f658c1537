"""Ingestion progress: markers from any process, counted and printed by the launcher's thread."""
from __future__ import annotations

import multiprocessing
import threading

from components.audio_example_gen import progress


def test_markers_count_each_file_once_and_never_raise(tmp_path):
    folder = str(tmp_path / progress.FOLDER)
    for key in ("blues/a.wav", "blues/b.wav", "blues/a.wav"):  # a retried bundle marks a file again
        progress.mark_done(folder, key)
    assert progress.count_done(folder) == 2
    progress.mark_done(None, "x")  # no folder: nothing to do
    (tmp_path / "file").write_text("")
    progress.mark_done(str(tmp_path / "file" / "sub"), "x")  # cannot create: ignored
    assert progress.count_done(str(tmp_path / "missing")) == 0


def _mark(folder: str, key: str) -> None:
    progress.mark_done(folder, key)


def test_reporter_prints_changes_and_the_final_count_then_cleans_up(tmp_path):
    folder = str(tmp_path / progress.FOLDER)
    lines: list[str] = []
    printed = threading.Event()

    def emit(line: str) -> None:
        lines.append(line)
        printed.set()

    with progress.Reporter(folder, total=3, interval=0.01, emit=emit):
        assert printed.wait(30)  # the thread's first report
        context = multiprocessing.get_context("spawn")  # markers from other processes, like Beam's workers
        for key in ("a", "b", "c"):
            worker = context.Process(target=_mark, args=(folder, key))
            worker.start()
            worker.join()
    assert lines[0] == "[ingest] 0/3 files decoded" and lines[-1] == "[ingest] 3/3 files decoded"
    assert len(lines) == len(set(lines))  # printed only when the count changed
    assert not (tmp_path / progress.FOLDER).exists()
