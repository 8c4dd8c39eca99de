"""The pandera schema a training set must satisfy, built from the model spec and the previous training set.

Rules, each a named check so a failure can say which rule broke:
- every column present; dtypes by kind (numeric, string, ...) as in the reference training set, or as
  first seen when there is none (a Feast integer feature turns float once a TTL leaves nulls in it, so
  int64 -> float64 is no change of kind, numbers -> strings is);
- `event_timestamp` tz-aware UTC, entity keys and the label never null;
- each input at most `max_null_fraction` null (a TTL-expired feature is legitimately null) and never
  entirely null;
- numeric inputs finite; never negative if the reference never was; at most `max_out_of_range_fraction`
  of them outside the reference's 1%..99% quantile span widened by `range_margin` spans on each side
  (never narrower than the reference's own min..max);
- the label within its classes, every class at least `min_class_fraction` of the rows (a ranker's relevance:
  whole numbers >= 0, relevant and not-relevant rows each at least that share);
- enough rows that the time split's test part reaches `evaluation.min_test_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandas.api import types as ptypes

from core.spec.model import ModelSpec
from core.training_set import TIME_COLUMN

UTC_DATETIME = "datetime64[UTC]"


@dataclass(frozen=True)
class Limits:
    """Thresholds of the data rules and of the skew test (see the module docstrings)."""

    max_null_fraction: float = 0.2
    min_class_fraction: float = 0.01
    range_margin: float = 1.0
    """Numeric inputs may reach this many reference 1%..99% spans beyond that span."""
    max_out_of_range_fraction: float = 0.01
    ks_threshold: float = 0.2
    psi_threshold: float = 0.25
    skew_min_values: int = 30
    """Fewer non-null values than this on either side: no skew test for that column."""


@dataclass(frozen=True)
class ColumnRoles:
    entities: tuple[str, ...]
    inputs: tuple[str, ...]
    label: str
    text: tuple[str, ...]
    """Free-text request fields: no value ranges, and skew is tested on their length."""


def column_roles(spec: ModelSpec, columns: Sequence[str]) -> ColumnRoles:
    """Which columns are keys, inputs and label: from the spec, the rest of `columns` being inputs (feature
    services) or ids (request-field models, whose inputs the spec lists)."""
    label = spec.label.column
    fields = spec.inputs.request_fields
    if fields is None:
        # A ranker's query and logged position ride along like keys: never inputs, never null.
        entities = tuple(dict.fromkeys([*spec.inputs.entity_keys, *spec.label.passenger_columns]))
        inputs = tuple(c for c in columns if c not in (*entities, TIME_COLUMN, label))
        return ColumnRoles(entities, inputs, label, ())
    inputs = tuple(f.name for f in fields)
    entities = tuple(c for c in columns if c not in (*inputs, TIME_COLUMN, label))
    text = tuple(f.name for f in fields if f.dtype == "string")
    return ColumnRoles(entities, inputs, label, text)


def dtype_kind(dtype: object) -> str:
    """A dtype's kind as the rules compare it: numeric, bool, datetime64[UTC], datetime, string."""
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return UTC_DATETIME if str(dtype.tz) == "UTC" else "datetime"
    if ptypes.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def min_rows(spec: ModelSpec) -> int:
    """Rows needed so the newest `test_fraction` holds `min_test_rows` (rounding guards 120/0.2)."""
    return math.ceil(round(spec.evaluation.min_test_rows / spec.training.split.test_fraction, 6))


def label_values(spec: ModelSpec) -> list[object]:
    """The label's classes as the training set holds them; a ranker's relevance is any whole number >= 0,
    whose balance is read as relevant (> 0) against not."""
    if spec.label.task == "ranking":
        return [False, True]
    return [0, 1] if spec.label.task == "binary" else list(spec.label.classes or ())


# ---------------------------------------------------------------------------------------------- checks
def _dtype_check(kind: str, seen: str) -> pa.Check:
    def has_kind(series: pd.Series) -> bool:
        # An all-null column has no values to type; the null rule reports it instead.
        return series.isna().all() or dtype_kind(series.dtype) == kind

    return pa.Check(has_kind, name=f"dtype('{kind}')", ignore_na=False, statistics={"seen": seen})


def _null_fraction_check(limit: float) -> pa.Check:
    def few_nulls(series: pd.Series) -> bool:
        fraction = float(series.isna().mean()) if len(series) else 0.0
        return fraction <= limit and (fraction < 1.0 or series.empty)

    return pa.Check(few_nulls, name="max_null_fraction", ignore_na=False, statistics={"limit": limit})


def _numeric_only(test: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], pd.Series | bool]:
    # A column of the wrong kind fails its dtype rule; comparing strings with numbers would just crash.
    def check(series: pd.Series) -> pd.Series | bool:
        return test(series) if dtype_kind(series.dtype) == "numeric" else True

    return check


def _finite_check() -> pa.Check:
    return pa.Check(
        _numeric_only(lambda s: pd.Series(np.isfinite(s.astype("float64")), index=s.index)), name="finite"
    )


def _range_checks(reference: pd.Series, limits: Limits) -> list[pa.Check]:
    """`in_range` (widened reference span, a few outliers tolerated: heavy tails reach new extremes
    on clean data) and, for a column that was never negative, a strict `non_negative`."""
    values = pd.to_numeric(reference, errors="coerce").dropna().astype("float64")
    values = values[np.isfinite(values)]
    if values.empty:
        return []
    q01, q99 = values.quantile(0.01), values.quantile(0.99)
    span = (q99 - q01) or abs(q99) or 1.0
    margin = limits.range_margin * span
    low, high = min(values.min(), q01 - margin), max(values.max(), q99 + margin)
    checks = []
    if values.min() >= 0:
        low = max(low, 0.0)
        checks.append(pa.Check(_numeric_only(lambda s: s >= 0), name="non_negative"))
    tolerance = limits.max_out_of_range_fraction

    def mostly_in_range(series: pd.Series) -> bool:
        outside = ~series.between(low, high)
        return series.empty or float(outside.mean()) <= tolerance

    stats = {"low": float(low), "high": float(high), "tolerance": tolerance}
    checks.append(pa.Check(_numeric_only(mostly_in_range), name="in_range", statistics=stats))
    return checks


def _non_blank_check() -> pa.Check:
    def non_blank(series: pd.Series) -> pd.Series:
        return series.astype("string").str.strip().str.len() > 0

    return pa.Check(non_blank, name="non_blank")


def _label_checks(spec: ModelSpec) -> list[pa.Check]:
    if spec.label.task == "ranking":
        return [
            pa.Check(
                lambda s: s.ge(0) & s.mod(1).eq(0),
                name="label_values",
                statistics={"allowed": ["whole numbers >= 0 (graded relevance)"]},
            )
        ]
    values = label_values(spec)
    return [pa.Check(lambda s: s.isin(values), name="label_values", statistics={"allowed": values})]


def _frame_checks(spec: ModelSpec, limits: Limits) -> list[pa.Check]:
    needed, classes, label = min_rows(spec), label_values(spec), spec.label.column

    def balanced(frame: pd.DataFrame) -> bool:
        if label not in frame.columns or frame.empty:
            return label in frame.columns  # a missing label is its column's failure
        if spec.label.task == "ranking":  # relevant (> 0) and not: both present enough to learn an order
            shares = (frame[label] > 0).value_counts(normalize=True).to_dict()
            return all(shares.get(value, 0.0) >= limits.min_class_fraction for value in (True, False))
        shares = frame[label].value_counts(normalize=True).to_dict()
        return all(shares.get(value, 0.0) >= limits.min_class_fraction for value in classes)

    return [
        pa.Check(lambda frame: len(frame) >= needed, name="min_rows", statistics={"min_rows": needed}),
        pa.Check(
            balanced,
            name="label_balance",
            statistics={"label": label, "classes": classes, "min_fraction": limits.min_class_fraction},
        ),
    ]


# ---------------------------------------------------------------------------------------------- schema
def _kind_of(column: str, spec: ModelSpec, sources: Sequence[pd.DataFrame]) -> tuple[str, str] | None:
    """(expected kind, where it was seen) for `column`, or None when no data shows it yet."""
    if column == TIME_COLUMN:
        return UTC_DATETIME, "contract"
    if column == spec.label.column:
        return ("string" if spec.label.task == "multiclass" else "numeric"), "spec label"
    for name, source in zip(("reference", "first run"), sources, strict=False):
        if source is not None and column in source.columns:
            return dtype_kind(source[column].dtype), f"{name} {source[column].dtype}"
    return None


def _column(column: str, roles: ColumnRoles, spec: ModelSpec, sources: list, limits: Limits) -> pa.Column:
    checks: list[pa.Check] = []
    kind = _kind_of(column, spec, sources)
    if kind is not None:
        checks.append(_dtype_check(*kind))
    if column not in roles.inputs:
        if column == roles.label:
            checks.extend(_label_checks(spec))
        return pa.Column(nullable=False, checks=checks, name=column)
    checks.append(_null_fraction_check(limits.max_null_fraction))
    reference = sources[0]
    if column in roles.text:
        checks.append(_non_blank_check())
    elif kind is not None and kind[0] == "numeric":
        checks.append(_finite_check())
        if reference is not None and column in reference.columns:
            checks.extend(_range_checks(reference[column], limits))
    return pa.Column(nullable=True, checks=checks, name=column)


def build_schema(
    spec: ModelSpec,
    frame_or_columns: pd.DataFrame | Sequence[str],
    reference: pd.DataFrame | None = None,
    limits: Limits | None = None,
) -> pa.DataFrameSchema:
    """The schema for `spec`'s training set. Dtypes and value ranges come from `reference` (the previous
    training set) when given, else dtypes from the current frame (nothing to compare ranges with)."""
    limits = limits or Limits()
    current = frame_or_columns if isinstance(frame_or_columns, pd.DataFrame) else None
    declared = [*spec.inputs.declared_columns, TIME_COLUMN, spec.label.column]
    seen = [*(reference.columns if reference is not None else ()), *list(frame_or_columns), *declared]
    columns = list(dict.fromkeys(str(c) for c in seen))
    roles = column_roles(spec, columns)
    sources = [reference, current]
    return pa.DataFrameSchema(
        {c: _column(c, roles, spec, sources, limits) for c in columns},
        checks=_frame_checks(spec, limits),
        name=spec.name,
        strict=False,
    )
