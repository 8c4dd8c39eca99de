"""Every step has the same anatomy: `component.py` holds only the typed KFP signature, whose body imports
no code but `components.<step>.step.run` (the standard library aside) and calls it once by keyword,
and `step.py` defines that `run`."""

from __future__ import annotations

import ast
import importlib
import inspect
import sys

import pytest

from core.paths import REPO_ROOT

STEPS = sorted(p.parent.name for p in (REPO_ROOT / "components").glob("*/component.py"))


def test_every_step_folder_has_a_component_and_a_step() -> None:
    folders = sorted(p.name for p in (REPO_ROOT / "components").iterdir() if (p / "__init__.py").is_file())
    assert folders == STEPS
    assert all((REPO_ROOT / "components" / step / "step.py").is_file() for step in STEPS)


@pytest.mark.parametrize("step", STEPS)
def test_the_component_body_calls_its_step_run(step: str) -> None:
    tree = ast.parse((REPO_ROOT / "components" / step / "component.py").read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(functions) == 1, f"{step}/component.py: one component function, nothing else"
    imports = [ast.unparse(n) for n in ast.walk(functions[0]) if isinstance(n, ast.Import | ast.ImportFrom)]
    project = [line for line in imports if line.split()[1].split(".")[0] not in sys.stdlib_module_names]
    # First the runtime-configuration check (a bad environment fails in its first second), then the step.
    expected = [
        "from core.runtime_config import check_step_environment",
        f"from components.{step}.step import run",
    ]
    assert project == expected, f"{step}/component.py imports {imports}"
    checks = [
        n
        for n in ast.walk(functions[0])
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "check_step_environment"
    ]
    assert [ast.literal_eval(c.args[0]) for c in checks] == [step.replace("_", "-")], (
        f"{step}: check its task name"
    )
    calls = [n for n in ast.walk(functions[0]) if isinstance(n, ast.Call) and ast.unparse(n.func) == "run"]
    assert len(calls) == 1, f"{step}/component.py: call run once"
    run = importlib.import_module(f"components.{step}.step").run
    accepted = set(inspect.signature(run).parameters)
    passed = {keyword.arg for keyword in calls[0].keywords}
    assert passed <= accepted and not calls[0].args, f"{step}: run() takes {sorted(accepted)}, got {passed}"
