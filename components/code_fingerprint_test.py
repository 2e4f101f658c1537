"""The import closure behind Transform's cache key: what it follows, and that only its files move the fingerprint."""
from __future__ import annotations

from pathlib import Path

import pytest

from components import code_fingerprint
from config.settings import PROJECT_ROOT

ENTRY = "feat.entry.feature_fn"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small project: feat.entry imports feat.helper, which imports feat.deep (relatively) and, inside a
    function, feat.lazy; feat.other and the test file are imported by nobody in the closure."""
    files = {
        "feat/__init__.py": "",
        "feat/entry.py": "import numpy as np\nfrom feat import helper\n\n\ndef feature_fn(x):\n    return helper.f(x)\n",
        "feat/helper.py": "from . import deep\n\n\ndef f(x):\n    from feat.lazy import g\n    return g(deep.h(x))\n",
        "feat/deep.py": "import os.path\n\n\ndef h(x):\n    return x\n",
        "feat/lazy.py": "def g(x):\n    return x\n",
        "feat/other.py": "from feat import entry\n",
        "feat/entry_test.py": "from feat import entry\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def relative(paths: list[Path], root: Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path in paths]


def test_the_closure_follows_project_imports_at_any_depth_and_nothing_else(project):
    closure = code_fingerprint.import_closure("feat.entry", project)
    assert relative(closure, project) == ["feat/__init__.py", "feat/deep.py", "feat/entry.py", "feat/helper.py",
                                          "feat/lazy.py"]


@pytest.mark.parametrize("edited, moves", [("feat/other.py", False), ("feat/entry_test.py", False),
                                           ("feat/entry.py", True), ("feat/deep.py", True), ("feat/lazy.py", True),
                                           ("feat/__init__.py", True)])
def test_only_an_edit_inside_the_closure_changes_the_fingerprint(project, edited, moves):
    before = code_fingerprint.function_fingerprint(ENTRY, project)
    with (project / edited).open("a") as f:
        f.write("\nEDITED = True\n")
    assert (code_fingerprint.function_fingerprint(ENTRY, project) != before) is moves


def test_a_new_import_brings_its_module_into_the_fingerprint(project):
    before = code_fingerprint.function_fingerprint(ENTRY, project)
    (project / "feat/lazy.py").write_text("from feat import other\n\n\ndef g(x):\n    return x\n")
    after = code_fingerprint.function_fingerprint(ENTRY, project)
    assert after != before and "feat/other.py" in relative(code_fingerprint.import_closure("feat.entry", project),
                                                            project)
    (project / "feat/other.py").write_text("VALUE = 2\n")  # now inside: its edit counts
    assert code_fingerprint.function_fingerprint(ENTRY, project) != after


def test_a_function_outside_the_project_is_refused(project):
    with pytest.raises(ValueError, match="No module 'feat.missing'"):
        code_fingerprint.function_fingerprint("feat.missing.fn", project)


def test_the_feature_code_closure_holds_the_feature_modules_and_no_model_or_test():
    closure = relative(code_fingerprint.import_closure("models.preprocessing"), PROJECT_ROOT)
    assert {"models/preprocessing.py", "models/features.py", "models/audio.py", "config/settings.py"} <= set(closure)
    assert "models/cnn.py" not in closure and "models/training.py" not in closure
    assert not any(path.endswith("_test.py") or path.startswith("tests/") for path in closure)
