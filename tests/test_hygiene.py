"""The suite's own hygiene, read from the test code: test modules share code only through tests/helpers
(never by importing a `test_*.py` module or a conftest), nothing skips for a missing install (only for
hardware, see tests/helpers/environment.py), and no assertion reads the clock or follows a fixed sleep."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SKIPS = {"pytest.skip", "pytest.importorskip", "pytest.mark.skip", "pytest.mark.skipif", "pytest.xfail"}
HARDWARE = re.compile(r"\b(GPU|CUDA)\b", re.IGNORECASE)
CLOCKS = ("time.time(", "time.monotonic(", "time.perf_counter(")


def _modules() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(TESTS.parent)}:{node.lineno}"  # type: ignore[attr-defined]


def test_test_modules_share_code_only_through_helpers() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(_tree(path)):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest"):
                    found.append(f"{_where(path, node)} imports {name}")
    assert found == [], "move what is shared to tests/helpers/"


def _reason(call: ast.Call) -> str:
    for keyword in call.keywords:
        if keyword.arg in ("reason", "msg") and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    texts = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return " ".join(texts)


def test_only_missing_hardware_is_a_reason_to_skip() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in SKIPS:
                kind = ast.unparse(node.func)
                if kind == "pytest.importorskip" or not HARDWARE.search(_reason(node)):
                    found.append(f"{_where(path, node)}: {kind} ({_reason(node) or 'no reason'})")
    assert found == [], "a missing install must fail the test (tests/helpers/environment.py)"


def _statement_lists(tree: ast.Module):
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if isinstance(statements, list) and statements and isinstance(statements[0], ast.stmt):
                yield statements


def test_no_assertion_reads_the_clock() -> None:
    found = [
        _where(path, node)
        for path in _modules()
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Assert) and any(clock in ast.unparse(node.test) for clock in CLOCKS)
    ]
    assert found == [], "assert on behaviour; speed targets belong in `make bench`"


def test_no_assertion_follows_a_fixed_sleep() -> None:
    found = []
    for path in _modules():
        for statements in _statement_lists(_tree(path)):
            for first, second in itertools.pairwise(statements):
                slept = isinstance(first, ast.Expr) and ast.unparse(first.value).startswith("time.sleep(")
                if slept and isinstance(second, ast.Assert):
                    found.append(_where(path, first))
    assert found == [], "poll for the condition with tests.helpers.waiting.wait_for instead"
