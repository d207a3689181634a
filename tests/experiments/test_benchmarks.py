"""The benchmarks are scripts that no other test runs: every name they import from the
project (at the top or inside a function) still exists, so a refactoring cannot leave
one broken until someone runs it."""

import ast
import importlib
from pathlib import Path

import pytest
from conftest import ROOT

BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def _project_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from vqa... / data_prep... import name` in the file."""
    return [
        (node.module, alias.name)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in ("vqa", "data_prep")
        for alias in node.names
    ]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_name_a_benchmark_imports_from_the_project_exists(path):
    missing = []
    for module, name in _project_imports(path):
        imported = importlib.import_module(module)
        if not hasattr(imported, name):
            try:  # a submodule imported by name
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"from {module} import {name}")
    assert not missing, missing
