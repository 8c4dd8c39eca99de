"""Daily activity snapshots: trailing-window counts per customer, stamped at midnight UTC.

A snapshot at day D covers days [D - window, D), so it never sees a session that ends after
its own timestamp: joining "latest snapshot at or before the session end" is leak-free.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.timeline import DAY_S, WARMUP_DAYS, ingestion_lag, origin


def _daily_counts(index: np.ndarray, day: np.ndarray, weights: np.ndarray | None, shape) -> np.ndarray:
    flat = np.bincount(index * shape[1] + day, weights=weights, minlength=shape[0] * shape[1])
    return flat.reshape(shape)


def _trailing_sum(daily: np.ndarray, window: int, days: np.ndarray) -> np.ndarray:
    """Sum over the `window` days before each day in `days` (exclusive of the day itself)."""
    cumulative = np.concatenate([np.zeros((daily.shape[0], 1)), daily.cumsum(axis=1)], axis=1)
    return cumulative[:, days] - cumulative[:, np.maximum(days - window, 0)]


def activity_snapshots(
    customers: pd.DataFrame, sessions: pd.DataFrame, config: GeneratorConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """One row per customer and day in [start, end), time-major.

    `sessions` is every session from `draw_sessions`, warm-up included.
    """
    n = len(customers)
    shape = (n, WARMUP_DAYS + config.days)
    index = sessions["customer_index"].to_numpy()
    day = (sessions["end_s"].to_numpy() // DAY_S).astype("int64")
    keep = day < shape[1]
    index, day = index[keep], day[keep]
    daily_sessions = _daily_counts(index, day, None, shape)
    daily_messages = _daily_counts(index, day, sessions["message_count"].to_numpy()[keep], shape)
    daily_views = rng.poisson(customers["pricing_view_rate"].to_numpy()[:, None], size=shape)
    daily_tickets = rng.poisson(customers["ticket_rate"].to_numpy()[:, None], size=shape)
    snapshot_days = np.arange(WARMUP_DAYS, shape[1])
    # A window average of per-reply latencies: customer level times a modest day-to-day wobble.
    response = customers["response_s"].to_numpy()[:, None] * np.exp(
        0.15 * rng.standard_normal((n, len(snapshot_days)))
    )

    def column(values: np.ndarray) -> np.ndarray:
        return values.T.ravel()

    stamps = pd.Timestamp(origin(config.start)) + pd.to_timedelta(snapshot_days, unit="D")
    frame = pd.DataFrame(
        {
            "customer_id": np.tile(customers["customer_id"].to_numpy(), len(snapshot_days)),
            "sessions_7d": column(_trailing_sum(daily_sessions, 7, snapshot_days)).astype("int64"),
            "messages_7d": column(_trailing_sum(daily_messages, 7, snapshot_days)).astype("int64"),
            "pricing_page_views_7d": column(_trailing_sum(daily_views, 7, snapshot_days)).astype("int64"),
            "support_tickets_30d": column(_trailing_sum(daily_tickets, 30, snapshot_days)).astype("int64"),
            "avg_response_time_s": np.round(column(response), 3),
            "event_timestamp": np.repeat(stamps, n),
        }
    )
    frame["created"] = frame["event_timestamp"] + ingestion_lag(rng, len(frame))
    return frame
