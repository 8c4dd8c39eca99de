"""Shared data for the serving-environment tests: demo rows before and after a covariate shift. These tests
run under the serving environment's interpreter; under another one they fail before they start."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers.drifted_demo import DRIFT_START, drifted_tables, session_rows
from tests.helpers.environment import require_serving_interpreter


@pytest.fixture(autouse=True, scope="session")
def _serving_interpreter() -> None:
    require_serving_interpreter()


@pytest.fixture(scope="session")
def tables() -> dict[str, pd.DataFrame]:
    import torch

    torch.set_num_threads(1)
    return drifted_tables()


@pytest.fixture(scope="session")
def sessions(tables) -> dict[str, pd.DataFrame]:
    """Training-set shaped rows split into: fit (old, pre-drift), clean (newer, pre-drift), drifted."""
    frame = session_rows(tables)
    before = frame[frame["event_timestamp"] < DRIFT_START]
    return {
        "fit": before.iloc[:-500],
        "clean": before.iloc[-500:].reset_index(drop=True),
        "drifted": frame[frame["event_timestamp"] >= DRIFT_START].iloc[:500].reset_index(drop=True),
    }
