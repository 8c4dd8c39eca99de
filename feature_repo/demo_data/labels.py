"""The conversion label: a noisy logistic function of point-in-time features.

P(converted) = sigmoid(intercept + sum_f weight_f * z_f + tier effect + noise), where z_f is the
feature after a log transform (counts, durations, sizes) and standardisation with the *undrifted*
data's mean and standard deviation. Keeping that reference fixed is what makes covariate drift
honest: shifted features move the label through the very same relation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from feature_repo.demo_data.config import (
    ACTIVITY_FEATURES,
    LABEL_FEATURES,
    PLAN_TIERS,
    SESSION_FEATURES,
    DriftSpec,
)
from feature_repo.demo_data.drift import intercept_shift, weight_multipliers
from feature_repo.demo_data.timeline import sigmoid

INTERCEPT = -1.9
NOISE_SD = 1.4
WEIGHTS = {
    "sessions_7d": 0.3,
    "messages_7d": 0.15,
    "pricing_page_views_7d": 0.55,
    "support_tickets_30d": -0.35,
    "avg_response_time_s": -0.3,
    "message_count": 0.15,
    "duration_s": 0.1,
    "sentiment_score": 0.55,
    "pricing_messages": 0.8,
    "company_size": 0.1,
}
TIER_EFFECT = dict(zip(PLAN_TIERS, (-0.4, 0.0, 0.3, 0.1), strict=True))
LOG1P = ("sessions_7d", "messages_7d", "pricing_page_views_7d", "support_tickets_30d", "message_count")
LOG = ("avg_response_time_s", "duration_s", "company_size")
LABEL_WINDOW = pd.Timedelta(days=7)


@dataclass(frozen=True)
class Reference:
    """Mean and standard deviation of each transformed label feature, from undrifted data."""

    mean: pd.Series
    std: pd.Series


def point_in_time_features(
    stats: pd.DataFrame, activity: pd.DataFrame, profile: pd.DataFrame
) -> pd.DataFrame:
    """Per session: its own stats plus the latest activity and profile snapshots at or before its end."""
    left = stats[["session_id", "customer_id", "event_timestamp", *SESSION_FEATURES]]
    for right, columns in (
        (activity, list(ACTIVITY_FEATURES)),
        (profile, ["plan_tier", "company_size"]),
    ):
        left = pd.merge_asof(
            left,
            right[["customer_id", "event_timestamp", *columns]].sort_values("event_timestamp", kind="stable"),
            on="event_timestamp",
            by="customer_id",
            direction="backward",
        )
    return left


def transform(features: pd.DataFrame) -> pd.DataFrame:
    out = features[list(LABEL_FEATURES)].astype("float64")
    out[list(LOG1P)] = np.log1p(out[list(LOG1P)])
    out[list(LOG)] = np.log(out[list(LOG)])
    return out


def reference(features: pd.DataFrame) -> Reference:
    transformed = transform(features)
    # Tiny samples have no spread: fall back to unit scale rather than dividing by zero or NaN.
    std = transformed.std().fillna(1.0).replace(0.0, 1.0)
    return Reference(mean=transformed.mean().fillna(0.0), std=std)


def conversion_logit(features: pd.DataFrame, ref: Reference, specs: Iterable[DriftSpec]) -> np.ndarray:
    """The noiseless logit, with label and concept drift applied by event time."""
    specs = list(specs)
    times = features["event_timestamp"]
    z = (transform(features) - ref.mean) / ref.std
    multipliers = weight_multipliers(times, specs)
    logit = INTERCEPT + intercept_shift(times, specs) + features["plan_tier"].map(TIER_EFFECT).to_numpy()
    for feature, weight in WEIGHTS.items():
        logit = logit + weight * multipliers[feature] * z[feature].to_numpy()
    return logit


def draw_conversions(
    features: pd.DataFrame, ref: Reference, specs: Iterable[DriftSpec], rng: np.random.Generator
) -> pd.DataFrame:
    """The label table: one row per session, known within `LABEL_WINDOW` after the session end.

    A purchase is seen when it happens; a non-purchase only when the window closes.
    """
    size = len(features)
    noise = rng.normal(0.0, NOISE_SD, size)
    draw = rng.random(size)
    purchase_delay_s = np.clip(rng.exponential(1.5 * 86_400, size), 60.0, LABEL_WINDOW.total_seconds())
    converted = draw < sigmoid(conversion_logit(features, ref, specs) + noise)
    delay_ms = np.where(converted, np.round(purchase_delay_s * 1000), LABEL_WINDOW.total_seconds() * 1000)
    known = features["event_timestamp"] + pd.to_timedelta(delay_ms.astype("int64"), unit="ms")
    return pd.DataFrame(
        {
            "session_id": features["session_id"].to_numpy(),
            "customer_id": features["customer_id"].to_numpy(),
            "event_timestamp": features["event_timestamp"],
            "converted": converted.astype("int64"),
            "label_timestamp": known,
        }
    )
