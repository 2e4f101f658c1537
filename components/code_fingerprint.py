"""Fingerprints of the project code a component runs, for its cache key: TFX's cache cannot see an edit to code
named by import path. Only the files a module transitively imports (read with ``ast``) count."""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path
from typing import Iterable, Optional

from config.settings import PROJECT_ROOT


def is_test_file(path: Path, root: Path = PROJECT_ROOT) -> bool:
    """Tests never run inside a component: ``*_test.py``, ``conftest.py`` and anything under ``tests/``."""
    relative = path.relative_to(root)
    return path.name.endswith("_test.py") or path.name == "conftest.py" or relative.parts[0] == "tests"


def module_file(module: str, root: Path = PROJECT_ROOT) -> Optional[Path]:
    """The project file of a dotted module name (``a/b.py`` or ``a/b/__init__.py``); None outside the project."""
    base = root.joinpath(*module.split("."))
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__`` first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name ``module`` may import, in functions too (``from a import b``: ``a`` and ``a.b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            try:  # a relative import is resolved from the package; one that cannot run is skipped
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except ImportError:
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {parent for name in names for parent in _with_parents(name)}


def import_closure(module: str, root: Path = PROJECT_ROOT) -> list[Path]:
    """The project files importing ``module`` runs (it, its packages, their project imports, transitively), sorted."""
    if module_file(module, root) is None:
        raise ValueError(f"No module {module!r} under {root}: a component's function must name a project module.")
    seen: dict[str, Path] = {}
    pending = _with_parents(module)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None or is_test_file(path, root):
            continue
        seen[name] = path
        pending.extend(imported_names(path, name))
    return sorted(set(seen.values()))


def function_module(function_path: str) -> str:
    """``models.preprocessing.preprocessing_fn`` -> ``models.preprocessing``."""
    return function_path.rpartition(".")[0]


def files_fingerprint(paths: Iterable[Path], root: Path = PROJECT_ROOT) -> str:
    """A short hash of the files' paths (relative to ``root``) and contents; the order given does not matter."""
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def function_fingerprint(function_path: str, root: Path = PROJECT_ROOT) -> str:
    """The fingerprint of the code a function named by import path runs: its module's import closure."""
    return files_fingerprint(import_closure(function_module(function_path), root), root)
