"""Typed configuration of the demo-data generator: seed, size, time range and drift on demand.

Frozen dataclasses rather than pydantic models so that a bad value fails with a one-line
`ValueError` naming the value and the allowed ones (pydantic's error is several lines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

PLAN_TIERS = ("free", "starter", "pro", "enterprise")
REGIONS = ("emea", "amer", "apac")
INTENTS = ("pricing", "demo_request", "technical_support", "billing", "cancellation", "general")
OFFER_CATEGORIES = ("pricing_guide", "integration", "security", "onboarding", "analytics", "support_plan")
DRIFT_KINDS = ("covariate", "label", "concept", "popularity", "new_offers")
OFFER_DRIFT_KINDS = ("popularity", "new_offers")  # their `features` are offer categories
TABLES = (
    "customer_profile",
    "customer_activity",
    "session_stats",
    "conversions",
    "messages",
    "offers",
    "offer_impressions",
    "customer_offer_activity",
)

ACTIVITY_FEATURES = (
    "sessions_7d",
    "messages_7d",
    "pricing_page_views_7d",
    "support_tickets_30d",
    "avg_response_time_s",
)
SESSION_FEATURES = ("message_count", "duration_s", "sentiment_score", "pricing_messages")
PROFILE_FEATURES = ("company_size", "tenure_days", "lifetime_value")
DRIFTABLE_FEATURES = ACTIVITY_FEATURES + SESSION_FEATURES + PROFILE_FEATURES
# The numeric inputs of the conversion relation (plan_tier is its categorical one).
LABEL_FEATURES = (*ACTIVITY_FEATURES, *SESSION_FEATURES, "company_size")
DEFAULT_CONCEPT_FEATURES = ("pricing_messages",)

# One random stream per table. Append new names at the end: spawn order decides every stream.
STREAMS = ("customers", "profile", "sessions", "activity", "messages", "texts", "labels", "offers")

DEFAULT_START = datetime(2026, 8, 3, tzinfo=UTC)
DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)


def as_utc(value: datetime | str) -> datetime:
    """A tz-aware UTC datetime; naive values and date strings are read as UTC."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class DriftSpec:
    """Drift applied to everything stamped at or after `start`.

    covariate: `features` are shifted by `magnitude` reference standard deviations; labels keep
        the same relation to the shifted values.
    label: the conversion logit's intercept moves by `magnitude`; features are untouched.
    concept: the label weights of `features` (default: pricing_messages) are multiplied by
        `1 - 2 * magnitude`, so magnitude 1 flips their sign; features are untouched.
    popularity: offers of the categories in `features` become `magnitude` (a relevance logit) more
        appealing to everyone; the logging policy does not know it.
    new_offers: `magnitude` new offers per category in `features` launch at `start`, well liked and
        unknown to the logging policy.
    """

    kind: str
    start: datetime
    features: tuple[str, ...] = ()
    magnitude: float = 1.0

    def __post_init__(self) -> None:
        _one_of("drift kind", self.kind, DRIFT_KINDS)
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "magnitude", float(self.magnitude))
        if not math.isfinite(self.magnitude):
            raise ValueError(f"drift magnitude must be finite, got {self.magnitude!r}")
        if self.kind in OFFER_DRIFT_KINDS:
            if not self.features:
                raise ValueError(f"{self.kind} drift needs offer categories: {', '.join(OFFER_CATEGORIES)}")
            for name in self.features:
                _one_of("offer category", name, OFFER_CATEGORIES)
            if self.kind == "new_offers" and not (self.magnitude >= 1 and self.magnitude.is_integer()):
                raise ValueError(
                    f"new_offers drift launches a whole number of offers, got {self.magnitude!r}"
                )
            return
        if self.kind == "label" and self.features:
            raise ValueError(f"label drift takes no features, got {', '.join(self.features)}")
        if self.kind == "covariate" and not self.features:
            raise ValueError(f"covariate drift needs features; allowed: {', '.join(DRIFTABLE_FEATURES)}")
        allowed = DRIFTABLE_FEATURES if self.kind == "covariate" else LABEL_FEATURES
        for name in self.features:
            _one_of(f"{self.kind} drift feature", name, allowed)

    @property
    def label_features(self) -> tuple[str, ...]:
        """The features whose label weight concept drift changes."""
        return self.features or DEFAULT_CONCEPT_FEATURES

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "features": list(self.features),
            "magnitude": self.magnitude,
        }


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. Fixed default dates, never "now", so a seed always gives the same data."""

    seed: int = 7
    customers: int = 1000
    start: datetime = DEFAULT_START
    end: datetime = DEFAULT_END
    drift: tuple[DriftSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("seed", "customers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.customers < 1:
            raise ValueError(f"customers must be >= 1, got {self.customers}")
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if (self.end - self.start).total_seconds() < 86_400:
            raise ValueError(f"end {self.end.isoformat()} must be at least a day after start")
        object.__setattr__(self, "drift", tuple(self.drift))
        for spec in self.drift:
            if not isinstance(spec, DriftSpec):
                raise ValueError(f"drift entries must be DriftSpec, got {type(spec).__name__}")

    @property
    def days(self) -> int:
        """Number of daily snapshots: whole or partial days in [start, end)."""
        return math.ceil((self.end - self.start).total_seconds() / 86_400)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": int(self.seed),
            "customers": int(self.customers),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "drift": [spec.to_json() for spec in self.drift],
        }


def streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators per table, so changing one table's draws leaves the others alone."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)}
