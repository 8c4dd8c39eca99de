"""Shared fixtures for component tests: small demo data and the training sets built from it.

The training sets are joined point-in-time with plain pandas, the way Feast's `get_historical_features`
does for the feature services (latest snapshot at or before the prediction time, within the view's TTL),
so trainer tests run without standing up a feature store.
"""

from __future__ import annotations

import pandas as pd
import pytest

from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from tests.helpers.demo_features import (
    ACTIVITY_FEATURES,
    ACTIVITY_TTL,
    CONVERSION_FEATURES,
    PROFILE_FEATURES,
    PROFILE_TTL,
    SESSION_FEATURES,
    SESSION_TTL,
)

DEMO_CUSTOMERS = 150


@pytest.fixture(scope="session")
def demo_tables() -> dict[str, pd.DataFrame]:
    """The demo generator's tables (in memory, same frames it writes as Parquet)."""
    return generate(GeneratorConfig(customers=DEMO_CUSTOMERS))


def _join_latest(
    left: pd.DataFrame, right: pd.DataFrame, key: str, columns: list[str], ttl: pd.Timedelta
) -> pd.DataFrame:
    # Ties on event time go to the latest `created`, as Feast resolves late corrections.
    right = right.sort_values(["event_timestamp", "created"], kind="stable")
    right = right.drop_duplicates([key, "event_timestamp"], keep="last")
    return pd.merge_asof(
        left.sort_values("event_timestamp", kind="stable"),
        right[[key, "event_timestamp", *columns]],
        on="event_timestamp",
        by=key,
        direction="backward",
        tolerance=ttl,
    )


def _engagement_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """The on-demand view `engagement_ratios_odfv` (feature_repo/on_demand.py), recomputed."""
    sessions = frame["sessions_7d"].astype("float64").clip(lower=1.0)
    messages = frame["message_count"].astype("float64").clip(lower=1.0)
    return frame.assign(
        messages_per_session_7d=frame["messages_7d"].astype("float64") / sessions,
        pricing_views_per_session_7d=frame["pricing_page_views_7d"].astype("float64") / sessions,
        session_pricing_share=frame["pricing_messages"].astype("float64") / messages,
    )


@pytest.fixture(scope="session")
def conversion_training_set(demo_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The conversion_xgboost_v1 training set: entity keys, event_timestamp, features, `converted`."""
    labels = demo_tables["conversions"][["session_id", "customer_id", "event_timestamp", "converted"]]
    frame = _join_latest(
        labels, demo_tables["customer_profile"], "customer_id", PROFILE_FEATURES, PROFILE_TTL
    )
    frame = _join_latest(
        frame, demo_tables["customer_activity"], "customer_id", ACTIVITY_FEATURES, ACTIVITY_TTL
    )
    frame = _join_latest(frame, demo_tables["session_stats"], "session_id", SESSION_FEATURES, SESSION_TTL)
    frame = _engagement_ratios(frame)
    columns = ["session_id", "customer_id", "event_timestamp", *CONVERSION_FEATURES, "converted"]
    return frame[columns].sort_values("event_timestamp", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="session")
def intent_training_set(demo_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The intent model's training set: message_id, event_timestamp, text, intent."""
    messages = demo_tables["messages"][["message_id", "event_timestamp", "text", "intent"]]
    return messages.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
