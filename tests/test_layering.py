"""The project's floors hold: no product module imports upward, none takes part in an import circle, and none
imports a test module or anything under tests/ (its fixtures in tests/testkit/ included; docs/architecture.md);
and no test module imports another.

Product: every .py file except tests/, bench/, evaluation/ (outside the product, free to import anything),
``*_test.py``, ``test_*.py`` and ``conftest.py``. Imports are read with ``ast`` (never executed), those inside
functions included: a deferred import is still a dependency.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

ROOT = Path(__file__).resolve().parent.parent

# Top-level folder (or module) -> floor. A module may import its own floor and those below it.
FLOORS: dict[str, int] = {
    "config": 0,                                         # settings, errors, loopback helpers: imports nothing of ours
    "audio": 1, "synthetic": 1,                          # the audio library; the synthetic data set
    "models": 2, "components": 2,                        # model families and features; TFX components
    "pipeline": 3,                                       # wiring and flags
    "local_runner": 4, "local_run": 4, "kubeflow": 4,    # runners, serving, the page, the tagger, scripts
    "serving": 4, "app": 4, "tagging": 4, "scripts": 4,
}
# Outside the product: they may import anything, and no product module may import them.
OUTSIDE = frozenset({"bench", "evaluation", "tests"})

# Upward imports that remain, (importer, imported) -> why, one line each. Each is a debt: the fix moves the
# imported module down to a floor both can see. None is left.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: str
    line: int


def is_test_file(relative: Path) -> bool:
    name = relative.name
    return (relative.parts[0] == "tests" or name.endswith("_test.py") or name.startswith("test_")
            or name == "conftest.py")


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path) -> dict[str, Path]:
    """Dotted name -> path (relative to ROOT) of every project .py file: top-level modules and packages'."""
    found = {}
    for path in sorted(root.glob("*.py")):
        found[module_name(path.relative_to(root))] = path.relative_to(root)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        for path in sorted(folder.rglob("*.py")):
            found[module_name(path.relative_to(root))] = path.relative_to(root)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def is_product(module: str, path: Path) -> bool:
    return top(module) not in OUTSIDE and not is_test_file(path)


def imports_of(module: str, path: Path, root: Path, modules: Mapping[str, Path]) -> list[Import]:
    """The project modules MODULE imports: ``from a import b`` is a.b where that is a module, else a."""
    found = []
    for node in ast.walk(ast.parse((root / path).read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c of a package a.b: the module a.b
                target = target.rpartition(".")[0]
            if target and target != module:
                found.append(Import(module, target, str(path), node.lineno))
    return found


def circles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The import graph's strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def problems(root: Path = ROOT, floors: Mapping[str, int] = FLOORS,
             known: Iterable[tuple[str, str]] = KNOWN_EXCEPTIONS) -> list[str]:
    """Every upward import, circle, import of a test module or of tests/ or bench/ by product code, and
    product folder without a floor; one line each."""
    modules = project_modules(root)
    known = set(known)
    found: list[str] = []
    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        if not is_product(module, path):
            continue
        if top(module) not in floors:
            found.append(f"no floor: {path} (add its folder to FLOORS)")
            continue
        edges.setdefault(module, set())
        for imp in imports_of(module, path, root, modules):
            where = f"{imp.path}:{imp.line}"
            target_path = modules[imp.imported]
            if not is_product(imp.imported, target_path):
                found.append(f"test import: {where} imports {imp.imported} ({target_path})")
            elif top(imp.imported) not in floors:
                found.append(f"no floor: {target_path}, imported at {where}")
            elif floors[top(imp.imported)] > floors[top(module)] and (module, imp.imported) not in known:
                found.append(f"upward: {where} ({top(module)}, floor {floors[top(module)]}) imports {imp.imported} "
                             f"(floor {floors[top(imp.imported)]})")
            else:
                edges[module].add(imp.imported)
    found += [f"circle: {' <-> '.join(circle)}" for circle in circles(edges)]
    return found


def is_test_module(path: Path) -> bool:
    """A module pytest collects (``*_test.py``, ``test_*.py``): not a helper under tests/ or conftest."""
    return path.name.endswith("_test.py") or path.name.startswith("test_")


def imports_between_test_modules(root: Path = ROOT) -> list[str]:
    """Every import of one test module by another: what two tests share belongs in tests/testkit/ or a helper of tests/."""
    modules = project_modules(root)
    return sorted({f"{imp.path}:{imp.line} imports {imp.imported}" for module, path in modules.items()
                   if is_test_module(path) for imp in imports_of(module, path, root, modules)
                   if is_test_module(modules[imp.imported])})


def test_the_product_imports_only_downward_without_circles_or_test_code():
    assert problems() == []


def test_no_test_module_imports_another():
    assert imports_between_test_modules() == []


def tools_importing_tests(root: Path = ROOT) -> list[str]:
    """Every import of tests/ (its fixtures included) by a benchmark or an evaluation module: a tool measures what
    the pipeline makes, never a test's stand-in."""
    modules = project_modules(root)
    return sorted(f"{imp.path}:{imp.line} imports {imp.imported}" for module, path in modules.items()
                  if top(module) in ("bench", "evaluation") and not is_test_file(path)
                  for imp in imports_of(module, path, root, modules) if top(imp.imported) == "tests")


def test_no_benchmark_imports_the_tests():
    assert tools_importing_tests() == []


def test_the_checker_reports_a_benchmark_importing_a_test_fixture(tmp_path):
    write(tmp_path, {
        "bench/__init__.py": "",
        "bench/serving.py": "def f():\n    from tests.testkit.serving import build_stand_in_model\n",
        "bench/serving_test.py": "from tests.testkit import serving\n",  # a test of the bench: allowed
        "tests/__init__.py": "",
        "tests/testkit/__init__.py": "",
        "tests/testkit/serving.py": "",
    })
    assert tools_importing_tests(tmp_path) == ["bench/serving.py:2 imports tests.testkit.serving"]


def test_every_known_exception_is_still_an_import():
    """An exception that no longer happens leaves the list, so the list shows what is left."""
    modules = project_modules(ROOT)
    edges = {(imp.importer, imp.imported) for module, path in modules.items() if is_product(module, path)
             for imp in imports_of(module, path, ROOT, modules)}
    assert set(KNOWN_EXCEPTIONS) <= edges, set(KNOWN_EXCEPTIONS) - edges


def write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_reports_an_upward_import_a_circle_and_a_test_import(tmp_path):
    write(tmp_path, {
        "config/__init__.py": "",
        "config/settings.py": "from pipeline import wiring\n",                   # upward: floor 0 -> 3
        "audio/__init__.py": "",
        "audio/decode.py": "from audio import levels\n",                          # a circle with levels
        "audio/levels.py": "def rule():\n    from audio.decode import decode\n",   # deferred, still an edge
        "pipeline/__init__.py": "",
        "pipeline/wiring.py": "import config.settings\nfrom pipeline import wiring_test\n",  # a test module
        "pipeline/wiring_test.py": "",
        "serving/__init__.py": "",
        "serving/server.py": "from tests.testkit.models import stand_in\n",        # the tests' kit
        "tests/__init__.py": "",
        "tests/testkit/__init__.py": "",
        "tests/testkit/models.py": "from serving import server\n",                  # outside: allowed
        "extra/__init__.py": "",
        "extra/tool.py": "",                                                        # a folder without a floor
    })
    found = problems(tmp_path, {"config": 0, "audio": 1, "pipeline": 3, "serving": 4}, known=())
    assert any(p.startswith("upward: config/settings.py:1 (config, floor 0) imports pipeline.wiring") for p in found)
    assert "circle: audio.decode <-> audio.levels" in found
    assert any(p.startswith("test import: pipeline/wiring.py:2 imports pipeline.wiring_test") for p in found)
    assert any(p.startswith("test import: serving/server.py:1 imports tests.testkit.models") for p in found)
    assert "no floor: extra/tool.py (add its folder to FLOORS)" in found
    assert "no floor: extra/__init__.py (add its folder to FLOORS)" in found
    assert len(found) == 6, found  # and nothing else: testkit's import of serving is allowed
    upward = next(p for p in found if p.startswith("upward:"))
    assert upward not in problems(tmp_path, {"config": 0, "audio": 1, "pipeline": 3, "serving": 4},
                                  known=[("config.settings", "pipeline.wiring")])


def test_the_checker_reports_a_test_module_importing_another(tmp_path):
    write(tmp_path, {
        "models/__init__.py": "",
        "models/features_test.py": "def helper():\n    pass\n",
        "models/audio_test.py": "from models.features_test import helper\nfrom tests.testkit import kit\n",
        "tests/testkit/__init__.py": "",
        "tests/testkit/kit.py": "",
        "tests/__init__.py": "",
        "tests/page_driver.py": "",
        "tests/test_page.py": "from tests import page_driver\nfrom tests import test_other\n",
        "tests/test_other.py": "",
    })
    assert imports_between_test_modules(tmp_path) == ["models/audio_test.py:1 imports models.features_test",
                                             "tests/test_page.py:2 imports tests.test_other"]


def test_pytest_collects_every_folder_that_holds_tests():
    """A test module in a folder outside pyproject.toml's testpaths would never run in CI."""
    import subprocess
    import tomllib

    testpaths = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"])
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    holding = {path.split("/", 1)[0] for path in tracked.split()
               if "/" in path and (path.endswith("_test.py") or Path(path).name.startswith("test_"))}
    assert holding and holding <= testpaths, sorted(holding - testpaths)
