"""Time helpers shared by the tables: offsets in seconds from an origin, and ingestion lags."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

DAY_S = 86_400.0
# Sessions are simulated this long before `start` so that 7- and 30-day windows are full from
# the first snapshot on; otherwise the early windows would undercount (non-stationary features).
WARMUP_DAYS = 30


def origin(start: datetime) -> datetime:
    """Where the simulation begins: `start` minus the warm-up."""
    return start - timedelta(days=WARMUP_DAYS)


def to_timestamps(base: datetime, seconds: np.ndarray) -> pd.DatetimeIndex:
    """UTC timestamps `seconds` after `base`, rounded to milliseconds."""
    millis = np.round(np.asarray(seconds, dtype="float64") * 1000).astype("int64")
    return pd.DatetimeIndex(pd.Timestamp(base) + pd.to_timedelta(millis, unit="ms"))


def ingestion_lag(rng: np.random.Generator, size: int) -> pd.TimedeltaIndex:
    """How long after the event a row lands in the store: seconds, sometimes minutes."""
    seconds = np.clip(rng.lognormal(np.log(20.0), 1.0, size), 1.0, 900.0)
    return pd.to_timedelta(np.round(seconds * 1000).astype("int64"), unit="ms")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
