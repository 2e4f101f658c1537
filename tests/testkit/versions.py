"""TF Serving version folders on disk without a real SavedModel: what the layout readers look at."""
from __future__ import annotations

from pathlib import Path


def fake_version(base: Path, name: str, complete: bool = True) -> None:
    """``base/name`` with a graph file and, when COMPLETE, its variables' index (an incomplete one is mid-copy)."""
    folder = base / name
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"x")
    if complete:
        (folder / "variables" / "variables.index").write_bytes(b"x")
