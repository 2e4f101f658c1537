"""The venv cache keeps the most recently used venvs and removes the rest (each is about 4 GB)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import setup_env  # noqa: E402


def _venv(cache: Path, name: str, used: float) -> Path:
    venv = cache / name
    venv.mkdir(parents=True)
    (venv / ".complete").write_text("built\n")
    (venv / setup_env.USED_MARKER).touch()
    os.utime(venv / setup_env.USED_MARKER, (used, used))
    os.utime(venv / ".complete", (1000.0, 1000.0))
    os.utime(venv, (1000.0, 1000.0))
    return venv


def test_prune_keeps_the_most_recently_used_venvs(tmp_path):
    old, recent, newest = (_venv(tmp_path, f"venv-py311-{n}", used) for n, used in
                           (("aaa", 2000.0), ("bbb", 3000.0), ("ccc", 4000.0)))
    unrelated = tmp_path / "weights"
    unrelated.mkdir()
    assert setup_env.prune(tmp_path, keep=2) == [old]
    assert not old.exists() and recent.exists() and newest.exists() and unrelated.exists()
    assert setup_env.prune(tmp_path, keep=0) == [recent]  # the venv just built always stays
    assert newest.exists()


def test_a_second_build_waits_for_the_first_and_reuses_its_venv(tmp_path, monkeypatch):
    import fcntl
    import threading

    monkeypatch.setenv("GENRE_VENV_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["setup_env.py"])
    target = setup_env.venv_path()
    target.mkdir(parents=True)
    builds = []
    monkeypatch.setattr(setup_env, "build", lambda t: builds.append(t))
    with open(tmp_path / ".build.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first build is under way
        waiter = threading.Thread(target=setup_env.main)
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive()  # blocked on the lock, not building beside it
        (target / ".complete").write_text("built\n")
    waiter.join(timeout=30)
    assert not waiter.is_alive() and builds == []
