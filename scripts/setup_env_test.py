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
