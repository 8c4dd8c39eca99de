"""A deterministic drift detector double that implements the platform's DriftDetector protocol (our own
interface), so the drift service's tests in the platform environment need no alibi-detect."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

MODEL = "conversion-xgboost"
FEATURES = ["plan_tier", "company_size", "lifetime_value", "sessions_7d"]


@dataclass(frozen=True)
class DriftResult:  # the contract's result type
    drift: bool
    statistics: dict[str, float]
    p_values: dict[str, float]
    threshold: float
    rows: int


class MeanBoundDetector:
    """Drift when the mean of `sessions_7d` is above `bound`; online, the mean runs over every row seen."""

    def __init__(self, version: str = "3", online: bool = False, bound: float = 5.0, fail: bool = False):
        self.model, self.version, self.features, self.online = MODEL, version, list(FEATURES), online
        self.bound, self.fail = bound, fail
        self.seen, self.total = 0, 0.0
        self.windows: list[int] = []

    def score(self, rows: pd.DataFrame) -> DriftResult:
        if self.fail:
            raise RuntimeError("detector exploded")
        self.windows.append(len(rows))
        if self.online:
            self.seen += len(rows)
            self.total += float(rows["sessions_7d"].sum())
            mean = self.total / self.seen
        else:
            mean = float(rows["sessions_7d"].mean())
        drift = mean > self.bound
        return DriftResult(
            drift=drift,
            statistics={"sessions_7d": mean, "lifetime_value": float(rows["lifetime_value"].mean())},
            p_values={"sessions_7d": 0.001 if drift else 0.6, "lifetime_value": 0.5},
            threshold=0.05 / 2,
            rows=len(rows),
        )

    def state(self) -> dict:
        return {"seen": self.seen, "total": self.total} if self.online else {}

    def restore(self, state: dict) -> None:
        self.seen, self.total = state["seen"], state["total"]
