"""Drift on demand. Deterministic (no random draws), so drift never changes any table's stream."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from feature_repo.demo_data.config import (
    ACTIVITY_FEATURES,
    LABEL_FEATURES,
    PROFILE_FEATURES,
    SESSION_FEATURES,
    DriftSpec,
)

TABLE_OF = {
    **dict.fromkeys(ACTIVITY_FEATURES, "customer_activity"),
    **dict.fromkeys(SESSION_FEATURES, "session_stats"),
    **dict.fromkeys(PROFILE_FEATURES, "customer_profile"),
}
# Shifted values stay physically possible: no negative counts or durations, sentiment in [-1, 1].
BOUNDS = {
    "avg_response_time_s": (0.1, np.inf),
    "duration_s": (1.0, np.inf),
    "sentiment_score": (-1.0, 1.0),
    "company_size": (1.0, np.inf),
    "message_count": (1.0, np.inf),
}
DEFAULT_BOUNDS = (0.0, np.inf)


def of_kind(specs: Iterable[DriftSpec], kind: str) -> list[DriftSpec]:
    return [spec for spec in specs if spec.kind == kind]


def _shifted(values: pd.Series, shift: float, feature: str) -> pd.Series:
    low, high = BOUNDS.get(feature, DEFAULT_BOUNDS)
    moved = np.clip(values.to_numpy(dtype="float64") + shift, low, high)
    if pd.api.types.is_integer_dtype(values.dtype):
        return pd.Series(np.round(moved).astype(values.dtype), index=values.index)
    return pd.Series(np.round(moved, 4), index=values.index)


def apply_covariate_drift(
    tables: dict[str, pd.DataFrame], specs: Iterable[DriftSpec]
) -> dict[str, pd.DataFrame]:
    """Copies of `tables` with each covariate spec's features moved by `magnitude` standard deviations.

    The standard deviation is the undrifted column's, so stacked specs add up predictably.
    """
    out = dict(tables)
    for spec in of_kind(specs, "covariate"):
        for feature in spec.features:
            name = TABLE_OF[feature]
            if out[name] is tables[name]:
                out[name] = tables[name].copy()
            frame = out[name]
            after = (frame["event_timestamp"] >= pd.Timestamp(spec.start)).to_numpy()
            shift = spec.magnitude * float(np.nan_to_num(tables[name][feature].std()))  # 1 row: no spread
            frame.loc[after, feature] = _shifted(frame.loc[after, feature], shift, feature)
    return out


def intercept_shift(times: pd.Series, specs: Iterable[DriftSpec]) -> np.ndarray:
    """Label drift: how far each row's conversion logit moves (0 before the drift starts)."""
    shift = np.zeros(len(times))
    for spec in of_kind(specs, "label"):
        shift += np.where((times >= pd.Timestamp(spec.start)).to_numpy(), spec.magnitude, 0.0)
    return shift


def weight_multipliers(times: pd.Series, specs: Iterable[DriftSpec]) -> dict[str, np.ndarray]:
    """Concept drift: per feature and row, the factor on that feature's label weight."""
    factors = {feature: np.ones(len(times)) for feature in LABEL_FEATURES}
    for spec in of_kind(specs, "concept"):
        after = (times >= pd.Timestamp(spec.start)).to_numpy()
        for feature in spec.label_features:
            factors[feature] = np.where(
                after, factors[feature] * (1.0 - 2.0 * spec.magnitude), factors[feature]
            )
    return factors
