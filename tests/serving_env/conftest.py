"""Shared data for the serving-environment tests: demo rows before and after a covariate shift."""

from __future__ import annotations

import pandas as pd
import pytest

from feature_repo.demo_data.config import DriftSpec, GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.labels import point_in_time_features

DRIFT_START = pd.Timestamp("2026-10-01", tz="UTC")
SHIFTED = "sessions_7d"


@pytest.fixture(scope="session")
def tables() -> dict[str, pd.DataFrame]:
    import torch

    torch.set_num_threads(1)
    drift = DriftSpec(kind="covariate", start=DRIFT_START, features=(SHIFTED,), magnitude=2)
    return generate(GeneratorConfig(customers=200, drift=(drift,)))


@pytest.fixture(scope="session")
def sessions(tables) -> dict[str, pd.DataFrame]:
    """Training-set shaped rows split into: fit (old, pre-drift), clean (newer, pre-drift), drifted."""
    features = point_in_time_features(
        tables["session_stats"], tables["customer_activity"], tables["customer_profile"]
    )
    labels = tables["conversions"][["session_id", "converted"]]
    frame = features.merge(labels, on="session_id").sort_values("event_timestamp", ignore_index=True)
    before = frame[frame["event_timestamp"] < DRIFT_START]
    return {
        "fit": before.iloc[:-500],
        "clean": before.iloc[-500:].reset_index(drop=True),
        "drifted": frame[frame["event_timestamp"] >= DRIFT_START].iloc[:500].reset_index(drop=True),
    }
