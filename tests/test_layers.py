"""The import graph of vqa/ and data_prep/ points one way: no cycles, and each layer
imports only those below it. Every import counts, those inside functions and
`if TYPE_CHECKING:` blocks too; importing a module imports the packages above
it (their __init__ runs first). The names vqa/__init__ exports lazily, by string, are
imported on first use, not when vqa is, and are no edge (nor is its `TYPE_CHECKING`
block, which only types those names)."""

import ast
from pathlib import Path

import pytest
from conftest import ROOT

# package prefix -> prefixes it must never import
FORBIDDEN = {
    "data_prep": (
        "vqa.models",
        "vqa.training",
        "vqa.answering",
        "vqa.features",
        "vqa.evaluation",
        "vqa.serve",
        "vqa.evaluation.compare",
        "vqa.cli",
        "vqa.config",
    ),
    "vqa.metrics": ("vqa.", "data_prep"),
    "vqa.errors": ("vqa.", "data_prep"),
    # The registries' one mechanism: below every kind of component it registers.
    "vqa.registry": (
        "vqa.config",
        "vqa.models",
        "vqa.features",
        "vqa.data",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "data_prep",
    ),
    "vqa.runs.atomic": ("vqa.", "data_prep"),
    # The run directory, its model card, atomic writes and locks: below all but errors
    # and metrics (vqa.runtime reads them without TensorFlow).
    "vqa.runs": (
        "vqa.config",
        "vqa.models",
        "vqa.features",
        "vqa.data",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "data_prep",
    ),
    # Keras-free, so that a config is checked before TensorFlow loads.
    "vqa.config": (
        "vqa.models",
        "vqa.features",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "vqa.data",
        "data_prep",
    ),
    "vqa.models": (
        "vqa.features",
        "vqa.data",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "data_prep",
    ),
    "vqa.features": (
        "vqa.config",
        "vqa.models",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "data_prep",
    ),
    # TensorFlow-free: what answers from an exported bundle (the import itself is tested
    # with TensorFlow blocked, in test_export.py)
    "vqa.inference": (
        "vqa.models",
        "vqa.features",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "vqa.export",
        "vqa.serve",
        "vqa.cli",
        "data_prep",
    ),
    "vqa.runtime": (
        "vqa.models",
        "vqa.features",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "vqa.export",
        "vqa.serve",
        "vqa.cli",
        "data_prep",
    ),
    "vqa.data": (
        "vqa.config",
        "vqa.models",
        "vqa.features",
        "vqa.training",
        "vqa.answering",
        "vqa.evaluation",
        "data_prep",
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in ("vqa", "data_prep")
        for p in (ROOT / package).rglob("*.py")
    }


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if name == "vqa":  # the lazy exports' types
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package up
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:  # `from vqa.runs import files` imports vqa.runs.files
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    for target in list(found):  # and the packages above what it imports, but its own
        parts = target.split(".")
        for i in range(1, len(parts)):
            ancestor = ".".join(parts[:i])
            if not (name == ancestor or name.startswith(ancestor + ".")):
                found.add(ancestor)
    return {m for m in found if m in modules}


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {name: _imports(path, name, modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_no_import_cycles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    # and the search finds one where there is one
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_layers_import_only_what_lies_below(graph):
    wrong = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for layer, banned in FORBIDDEN.items()
        if module == layer or module.startswith(layer + ".")
        for target in sorted(targets)
        if target.startswith(banned) and not (target == layer or target.startswith(layer + "."))
    ]
    assert not wrong, "\n".join(wrong)


def test_the_graph_sees_lazy_imports_and_packages(graph, tmp_path):
    # evaluate_run imports the Answerer inside the function: it still counts.
    assert "vqa.answering" in graph["vqa.evaluation"]
    assert "vqa.metrics" in graph["data_prep.vqa"]
    # Importing vqa.models.fusions.registry runs vqa/models/__init__ (and its builder).
    assert "vqa" in graph["data_prep.folder"]  # through `from vqa.metrics import ...`
    assert "vqa.models.fusions" in graph["vqa.models.builder"]
    # A relative import resolves from the module's package.
    module = tmp_path / "mod.py"
    module.write_text("from .grid import modulate\nfrom . import checks\n")
    modules = _modules()
    found = _imports(module, "vqa.models.mod", modules)
    assert {"vqa.models.grid", "vqa.models.checks"} <= found


def test_modules_have_one_job_and_stay_small():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert not {name: n for name, n in sizes.items() if n > 400}
    # the top of vqa/ shows the architecture: the rest lives in one package per layer
    top = [p.stem for p in (ROOT / "vqa").glob("*.py") if p.stem not in ("__init__", "__main__")]
    assert len(top) <= 12, sorted(top)
