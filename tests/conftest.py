"""Suite-wide hooks and fixtures.

A test marked `serving` fails before it starts when the serving environment is missing: `make test`
installs it, so its absence is a broken install, not a reason to skip (the one policy on skips is in
tests/helpers/environment.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.environment import require_serving_env
from tests.helpers.specs import FIXTURE_SPEC_DIR


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("serving") is not None:
        require_serving_env()


@pytest.fixture
def fixture_specs(monkeypatch: pytest.MonkeyPatch) -> Path:
    """`spec_directory()` reads the fixture specs (tests/helpers/specs.py) for the test, in this process
    and in the processes it starts."""
    from core.settings import variable

    monkeypatch.setenv(variable("spec_dir"), str(FIXTURE_SPEC_DIR))
    return FIXTURE_SPEC_DIR
