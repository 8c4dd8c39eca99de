"""Time-based train / validation / test split (the `Split` contract in components/README.md).

Rows are ordered by `event_timestamp` (stable, never shuffled): the newest `test_fraction` is the test
split, the `validation_fraction` before it validation, the oldest rest train. Rows that share a timestamp
never straddle a boundary: a boundary that would cut through such a group moves to the group's first row,
so the whole group goes to the newer split. Hence every training row is strictly older than every
validation row, and every validation row strictly older than every test row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.spec.training import Split
from core.training_set import TIME_COLUMN

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def summary(self) -> dict[str, dict[str, Any]]:
        """Rows and event-time range (ISO 8601, inclusive) per split, for lineage and the bundle."""
        return {name: _describe(getattr(self, name)) for name in SPLIT_NAMES}


def time_split(frame: pd.DataFrame, split: Split) -> Splits:
    """Split `frame` by `event_timestamp` per `split`; raises ValueError if a split would be empty."""
    if TIME_COLUMN not in frame.columns:
        raise ValueError(f"training set has no {TIME_COLUMN!r} column to split by time")
    missing = int(frame[TIME_COLUMN].isna().sum())
    if missing:
        raise ValueError(f"training set column {TIME_COLUMN!r} has {missing} missing timestamps")
    ordered = frame.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
    times = ordered[TIME_COLUMN]
    rows = len(ordered)
    test_start = _tie_safe_cut(times, rows - round(rows * split.test_fraction))
    valid_start = _tie_safe_cut(times, test_start - round(rows * split.validation_fraction))
    splits = Splits(
        train=ordered.iloc[:valid_start].reset_index(drop=True),
        valid=ordered.iloc[valid_start:test_start].reset_index(drop=True),
        test=ordered.iloc[test_start:].reset_index(drop=True),
    )
    _require_non_empty(splits, rows, split)
    return splits


def _tie_safe_cut(times: pd.Series, cut: int) -> int:
    """Move `cut` back to the first row of its timestamp group (so equal times stay together)."""
    cut = min(max(cut, 0), len(times))
    if cut == 0 or cut == len(times):
        return cut
    return int(times.searchsorted(times.iloc[cut], side="left"))


def _require_non_empty(splits: Splits, rows: int, split: Split) -> None:
    for name in SPLIT_NAMES:
        if getattr(splits, name).empty:
            raise ValueError(
                f"time split of {rows} rows leaves the {name} split empty (validation_fraction="
                f"{split.validation_fraction:g}, test_fraction={split.test_fraction:g}): "
                "need more rows or more distinct event times"
            )


def _describe(frame: pd.DataFrame) -> dict[str, Any]:
    times = frame[TIME_COLUMN]
    return {
        "rows": len(frame),
        "start": _iso(times.min()) if len(frame) else None,
        "end": _iso(times.max()) if len(frame) else None,
    }


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()
