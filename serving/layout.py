"""TF Serving's layout on disk, ``<base>/<version>/saved_model.pb`` and ``variables/``, read without TensorFlow
(the launcher and the benchmarks must not pay for its import, nor measure it)."""
from __future__ import annotations

import os


def is_complete_version(path: str) -> bool:
    """A SavedModel folder with its graph and its variables' index: one that can be loaded."""
    graph = any(os.path.isfile(os.path.join(path, name)) for name in ("saved_model.pb", "saved_model.pbtxt"))
    return graph and os.path.isfile(os.path.join(path, "variables", "variables.index"))


def version_folders(base: str) -> dict[int, str]:
    """Each complete version under BASE by number, with its folder (TF Serving reads "007" as version 7)."""
    if not os.path.isdir(base):
        return {}
    return {int(v): os.path.join(base, v) for v in os.listdir(base) if v.isdigit()
            and is_complete_version(os.path.join(base, v))}


def pushed_versions(base: str) -> list[int]:
    """The complete version numbers under BASE, ascending."""
    return sorted(version_folders(base))
