"""What the tests need installed, and the one policy on skips.

`make test` installs everything a test here needs: the serving environment (`.venv-serving`: Triton,
alibi-detect), the bench environment (`.venv-bench`: MLServer), wrk, prometheus/promtool and
alertmanager/amtool. A test that needs one of them FAILS when it is missing, naming what to run: a missing
one is a broken install, and a skip would turn that into a green run that tested nothing. The only skip
allowed is for hardware this machine may truly lack (a GPU), with that reason.

Tests marked `serving` are checked by `tests/conftest.py` before they run; the others call `require_*`.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.paths import REPO_ROOT

SERVING_VENV_PYTHON = REPO_ROOT / ".venv-serving" / "bin" / "python"


def require_executable(name: str, installed_by: str) -> str:
    """The path of `name` on PATH; the test fails, naming `installed_by`, when there is none."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: `{installed_by}` installs it", pytrace=False)
    return path


def require_file(path: Path, what: str, installed_by: str) -> Path:
    """`path`, which must exist; the test fails, naming `what` and `installed_by`, when it does not."""
    if not Path(path).exists():
        pytest.fail(f"{path} not found ({what}): `{installed_by}` installs it", pytrace=False)
    return Path(path)


def require_serving_env() -> Path:
    """The serving environment's interpreter (Triton and alibi-detect run under it)."""
    return require_file(SERVING_VENV_PYTHON, "the serving environment", "make install")


def require_serving_interpreter() -> None:
    """This interpreter must be the serving environment's (tests/serving_env import alibi-detect)."""
    if importlib.util.find_spec("alibi_detect") is None:
        pytest.fail(
            "alibi-detect is not importable here: run tests/serving_env with .venv-serving/bin/python "
            "(`make install` creates it)",
            pytrace=False,
        )


def served_test(test: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a test that runs the real serving stack (Triton from the serving environment)."""
    return pytest.mark.slow(pytest.mark.serving(test))
