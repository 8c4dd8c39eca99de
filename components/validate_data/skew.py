"""Training/serving-style skew between this training set and the previous one (the reference).

Numeric columns: two-sample Kolmogorov-Smirnov statistic (scipy), flagged above `ks_threshold`. The KS
statistic rather than its p-value, because with thousands of rows a p-value flags shifts too small to
matter. Categorical columns (and the label): population stability index over the union of categories,
missing values as a category of their own, flagged above `psi_threshold` (0.25 is the usual "major shift"
line). Free text: KS on the length in characters, as a cheap proxy for its distribution.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from components.validate_data.schema import ColumnRoles, Limits, dtype_kind

_MISSING = "<missing>"
_PSI_FLOOR = 1e-4  # an empty bin on one side would make PSI infinite


@dataclass(frozen=True)
class SkewResult:
    column: str
    test: str
    """`ks`, `ks_length` (free text) or `psi`; `none` when the column could not be tested."""
    statistic: float | None
    threshold: float
    flagged: bool
    p_value: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def population_stability_index(current: pd.Series, reference: pd.Series) -> float:
    """PSI = sum((p - q) * ln(p / q)) over categories, with missing values as a category."""
    cur = current.astype("object").where(current.notna(), _MISSING).astype(str).value_counts(normalize=True)
    ref = (
        reference.astype("object").where(reference.notna(), _MISSING).astype(str).value_counts(normalize=True)
    )
    categories = cur.index.union(ref.index)
    p = np.clip(cur.reindex(categories, fill_value=0.0).to_numpy(), _PSI_FLOOR, None)
    q = np.clip(ref.reindex(categories, fill_value=0.0).to_numpy(), _PSI_FLOOR, None)
    return float(np.sum((p - q) * np.log(p / q)))


def _ks(column: str, current: pd.Series, reference: pd.Series, limits: Limits, test: str) -> SkewResult:
    cur = pd.to_numeric(current, errors="coerce").dropna().astype("float64")
    ref = pd.to_numeric(reference, errors="coerce").dropna().astype("float64")
    if min(len(cur), len(ref)) < limits.skew_min_values:
        note = f"too few values to test ({len(cur)} current, {len(ref)} reference)"
        return SkewResult(column, "none", None, limits.ks_threshold, False, note=note)
    result = stats.ks_2samp(cur.to_numpy(), ref.to_numpy())
    statistic = float(result.statistic)
    flagged = statistic > limits.ks_threshold
    return SkewResult(column, test, statistic, limits.ks_threshold, flagged, float(result.pvalue))


def _psi(column: str, current: pd.Series, reference: pd.Series, limits: Limits) -> SkewResult:
    if min(len(current), len(reference)) < limits.skew_min_values:
        note = f"too few rows to test ({len(current)} current, {len(reference)} reference)"
        return SkewResult(column, "none", None, limits.psi_threshold, False, note=note)
    statistic = population_stability_index(current, reference)
    flagged = math.isfinite(statistic) and statistic > limits.psi_threshold
    return SkewResult(column, "psi", statistic, limits.psi_threshold, flagged)


def _text_length(series: pd.Series) -> pd.Series:
    return series.astype("string").str.len()


def detect_skew(
    current: pd.DataFrame, reference: pd.DataFrame, roles: ColumnRoles, limits: Limits
) -> list[SkewResult]:
    """One result per input column and the label found in both frames, in column order."""
    results = []
    for column in (*roles.inputs, roles.label):
        if column not in current.columns or column not in reference.columns:
            continue
        cur, ref = current[column], reference[column]
        kinds = {dtype_kind(cur.dtype), dtype_kind(ref.dtype)}
        if column in roles.text:
            results.append(_ks(column, _text_length(cur), _text_length(ref), limits, "ks_length"))
        elif column == roles.label or kinds <= {"string", "bool"}:
            results.append(_psi(column, cur, ref, limits))
        elif kinds == {"numeric"}:
            results.append(_ks(column, cur, ref, limits, "ks"))
        else:
            note = f"dtype changed ({ref.dtype} -> {cur.dtype}); see the dtype rule"
            results.append(SkewResult(column, "none", None, limits.ks_threshold, False, note=note))
    return results
