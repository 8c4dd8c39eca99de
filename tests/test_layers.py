"""The floor plan, read from the code's own imports: each top-level folder imports only the folders below
it in the lifecycle, so there is no cycle between folders and `core/` imports none of them.

Every import counts: module level, inside functions (lazy imports), and `importlib.import_module` with a
literal name (a by-string import is still a dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from core.paths import REPO_ROOT

# Bottom to top: a folder may import the folders before it in this list, never one after it.
LAYERS = ("core", "feature_repo", "inference", "monitoring", "components", "pipelines")
# Apart from the lifecycle: the manifest checks need only the ground floor.
BESIDE = {"manifests": ("core",)}
FOLDERS = (*LAYERS, *BESIDE)


def allowed(source: str) -> set[str]:
    if source in BESIDE:
        return set(BESIDE[source])
    return set(LAYERS[: LAYERS.index(source)])


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("importlib.import_module", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def folder_edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source in FOLDERS:
        for path in sorted((REPO_ROOT / source).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for line, module in imported_modules(path):
                target = module.split(".")[0]
                if target in FOLDERS and target != source:
                    edges[(source, target)].append(f"{path.relative_to(REPO_ROOT)}:{line} imports {module}")
    return edges


@pytest.fixture(scope="module")
def edges() -> dict[tuple[str, str], list[str]]:
    return folder_edges()


def test_no_folder_imports_one_above_it(edges: dict[tuple[str, str], list[str]]) -> None:
    wrong = [
        where
        for (source, target), places in edges.items()
        if target not in allowed(source)
        for where in places
    ]
    assert not wrong, "imports against the floor plan (move the name to its lower home):\n" + "\n".join(wrong)


def test_core_imports_no_other_folder(edges: dict[tuple[str, str], list[str]]) -> None:
    assert not [places for (source, _), places in edges.items() if source == "core"]


def test_the_rule_sees_lazy_and_by_string_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib\n"
        "def later():\n"
        "    from pipelines.training import training_pipeline\n"
        "    return importlib.import_module('components.train.step')\n"
    )
    assert [module for _, module in imported_modules(probe)] == [
        "importlib",
        "pipelines.training",
        "components.train.step",
    ]


def test_the_layers_are_the_top_level_code_folders() -> None:
    packages = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(FOLDERS), "a new top-level package needs its place in LAYERS or BESIDE"


def test_no_module_hands_on_names_it_imports() -> None:
    """One address per name: no `__all__` lists and no `import x as x` re-exports in the project's code."""
    found = []
    for source in FOLDERS:
        for path in sorted((REPO_ROOT / source).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                where = f"{path.relative_to(REPO_ROOT)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Assign) and any(ast.unparse(t) == "__all__" for t in node.targets):
                    found.append(f"{where} __all__")
                elif isinstance(node, ast.ImportFrom) and any(a.asname == a.name for a in node.names):
                    found.append(f"{where} re-exports {node.module}")
    assert not found, found
