"""Demo data whose `sessions_7d` shifts (covariate drift, magnitude 2) from DRIFT_START on, and its
sessions as training-set rows (point-in-time features and the conversion label), for the drift tests."""

from __future__ import annotations

import pandas as pd

from feature_repo.demo_data.config import DriftSpec, GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.labels import point_in_time_features

DRIFT_START = pd.Timestamp("2026-10-01", tz="UTC")
SHIFTED = "sessions_7d"


def drifted_tables(customers: int = 200) -> dict[str, pd.DataFrame]:
    drift = DriftSpec(kind="covariate", start=DRIFT_START, features=(SHIFTED,), magnitude=2)
    return generate(GeneratorConfig(customers=customers, drift=(drift,)))


def session_rows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Training-set shaped rows, oldest first: the point-in-time features of each session and `converted`."""
    features = point_in_time_features(
        tables["session_stats"], tables["customer_activity"], tables["customer_profile"]
    )
    labels = tables["conversions"][["session_id", "converted"]]
    return features.merge(labels, on="session_id").sort_values("event_timestamp", ignore_index=True)
