"""The configuration knows nothing of the command line: config.settings imports neither pipeline.flags nor
pipeline.beam_args, so the two modules that read it (flags, beam_args) import it one way only."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def project_modules_after(module: str) -> list[str]:
    """The project's config.* and pipeline.* modules loaded by importing MODULE in a fresh interpreter."""
    code = (f"import sys, {module}; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('config.', 'pipeline.')))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.split()


def test_the_configuration_imports_no_command_line_code():
    assert project_modules_after("config.settings") == ["config.settings"]


def test_beam_arguments_and_flags_import_in_either_order():
    assert project_modules_after("pipeline.beam_args") == ["config.settings", "pipeline.beam_args"]
    assert project_modules_after("pipeline.flags") == ["config.settings", "pipeline.beam_args", "pipeline.flags"]


def test_the_configuration_module_has_no_import_of_them_even_inside_a_function():
    import ast
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not imported & {"pipeline.beam_args", "pipeline.flags"}
