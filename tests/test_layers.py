"""The import graph of vqa/ and data_prep/ points one way: no cycles, and each layer
imports only those below it. Every import counts, those inside functions too (only
`if TYPE_CHECKING:` blocks are left out)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package prefix -> prefixes it must never import
FORBIDDEN = {
    "data_prep": ("vqa.models", "vqa.training", "vqa.answering", "vqa.features",
                  "vqa.evaluation", "vqa.serve", "vqa.compare", "vqa.cli", "vqa.config"),
    "vqa.metrics": ("vqa.", "data_prep"),
    "vqa.models": ("vqa.features", "vqa.data", "vqa.training", "vqa.answering",
                   "vqa.evaluation", "data_prep"),
    "vqa.features": ("vqa.config", "vqa.models", "vqa.training", "vqa.answering",
                     "vqa.evaluation", "data_prep"),
    "vqa.data": ("vqa.config", "vqa.models", "vqa.features", "vqa.training",
                 "vqa.answering", "vqa.evaluation", "data_prep"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in ("vqa", "data_prep")
            for p in (ROOT / package).rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # what only type checkers read is no dependency
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:  # `from vqa import run_dir` imports vqa.run_dir
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {m for m in found if m in modules}


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_no_import_cycles(graph):
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_layers_import_only_what_lies_below(graph):
    wrong = [f"{module} imports {target}"
             for module, targets in sorted(graph.items())
             for layer, banned in FORBIDDEN.items()
             if module == layer or module.startswith(layer + ".")
             for target in sorted(targets) if target.startswith(banned)
             and not (target == layer or target.startswith(layer + "."))]
    assert not wrong, "\n".join(wrong)


def test_the_graph_sees_lazy_imports(graph):
    # evaluate_run imports the Answerer inside the function: it still counts.
    assert "vqa.answering" in graph["vqa.evaluation"]
    assert "vqa.metrics" in graph["data_prep.vqa"]


def test_modules_have_one_job_and_stay_small():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert not {name: n for name, n in sizes.items() if n > 400}
