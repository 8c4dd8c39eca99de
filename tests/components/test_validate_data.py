"""validate_data on the demo data: clean sets pass, each broken rule fails naming its column and check,
skew is flagged for the generator's covariate drift and not for clean data.

Training sets come from the shared fixtures (the conversion_xgboost_v1 join recomputed with pandas) and,
for drift, from the generator's own point-in-time join of drifted tables.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.validate_data.schema import Limits, build_schema, min_rows
from components.validate_data.validation import (
    ValidationError,
    raise_for_failures,
    report_markdown,
    validate,
)
from feature_repo.demo_data.config import DEFAULT_END, DEFAULT_START, DriftSpec, GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.labels import point_in_time_features
from tests.helpers.specs import fixture_spec

MIDPOINT = DEFAULT_START + (DEFAULT_END - DEFAULT_START) / 2


@pytest.fixture(scope="module")
def xgb():
    return fixture_spec("conversion-xgboost")


@pytest.fixture(scope="module")
def halves(conversion_training_set):
    """(older half as the reference, newer half as the new training set)."""
    middle = len(conversion_training_set) // 2
    older = conversion_training_set.iloc[:middle].reset_index(drop=True)
    return older, conversion_training_set.iloc[middle:].reset_index(drop=True)


def _checks(report) -> set[tuple[str | None, str]]:
    return {(f.column, f.check) for f in report.failures}


def _drift_halves(drift: tuple[DriftSpec, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Before/after MIDPOINT of the generator's own point-in-time join, with the label attached."""
    tables = generate(GeneratorConfig(customers=150, drift=drift))
    features = point_in_time_features(
        tables["session_stats"], tables["customer_activity"], tables["customer_profile"]
    )
    frame = features.merge(tables["conversions"][["session_id", "converted"]], on="session_id")
    return frame[frame.event_timestamp < MIDPOINT], frame[frame.event_timestamp >= MIDPOINT]


# ------------------------------------------------------------------------------------------ clean data
def test_clean_training_sets_pass_with_and_without_a_reference(xgb, conversion_training_set, halves):
    assert validate(xgb, conversion_training_set).passed
    reference, current = halves
    report = validate(xgb, current, reference)
    assert report.passed, [f.one_line() for f in report.failures]
    assert not report.skewed
    raise_for_failures(report)  # no exception
    assert report.stats["sessions_7d"]["count"] == len(current)
    assert report.stats["plan_tier"]["distinct"] == 4


def test_clean_text_training_set_passes(intent_training_set):
    spec = fixture_spec("intent-transformer")
    middle = len(intent_training_set) // 2
    report = validate(spec, intent_training_set.iloc[middle:], intent_training_set.iloc[:middle])
    assert report.passed, [f.one_line() for f in report.failures]
    assert {(s.column, s.test) for s in report.skew} == {("text", "ks_length"), ("intent", "psi")}


def test_nulls_below_the_limit_pass_as_ttl_expired_features(xgb, halves):
    reference, current = halves
    current = current.copy()
    current.loc[current.index[::10], "sessions_7d"] = None  # 10% null, limit 20%
    assert validate(xgb, current, reference).passed


# -------------------------------------------------------------------------------------------- failures
def test_a_feature_full_of_nulls_fails_naming_the_column(xgb, halves):
    reference, current = halves
    broken = current.assign(sessions_7d=float("nan"))
    report = validate(xgb, broken, reference)
    assert _checks(report) == {("sessions_7d", "max_null_fraction")}
    with pytest.raises(ValidationError) as err:
        raise_for_failures(report)
    message = str(err.value)
    assert message.startswith(
        "validate_data: conversion-xgboost: column 'sessions_7d': check 'max_null_fraction'"
    )
    assert "100.0% null, limit 20%" in message and "\n" not in message


def test_a_single_class_label_fails_label_balance(xgb, conversion_training_set):
    report = validate(xgb, conversion_training_set.assign(converted=0))
    assert _checks(report) == {(None, "label_balance")}
    assert "1: 0.0%" in report.failures[0].message


def test_a_numeric_column_turned_to_strings_fails_its_dtype_rule(xgb, halves):
    reference, current = halves
    broken = current.assign(duration_s=current["duration_s"].map("{:.1f}s".format))
    report = validate(xgb, broken, reference)
    assert ("duration_s", "dtype('numeric')") in _checks(report)
    failure = next(f for f in report.failures if f.column == "duration_s")
    assert "got object" in failure.message and "float64" in failure.message
    # int64 -> float64 (what a TTL's nulls do to a Feast integer feature) is no change of kind.
    assert validate(xgb, current.assign(sessions_7d=current["sessions_7d"].astype(float)), reference).passed


def test_too_few_rows_fails_min_rows(xgb, conversion_training_set):
    needed = min_rows(xgb)
    assert needed == 1334  # 200 test rows at test_fraction 0.15
    report = validate(xgb, conversion_training_set.iloc[: needed - 1])
    assert _checks(report) == {(None, "min_rows")}
    (failure,) = report.failures
    for field in ("training.window", "evaluation.min_test_rows", "training.split.test_fraction"):
        assert field in failure.message, failure.message
    assert validate(xgb, conversion_training_set.iloc[:needed]).passed


def test_missing_column_and_unknown_class_fail(xgb, halves, intent_training_set):
    reference, current = halves
    report = validate(xgb, current.drop(columns=["plan_tier"]), reference)
    assert _checks(report) == {("plan_tier", "column_in_dataframe")}
    texts = intent_training_set.copy()
    texts.loc[texts.index[:5], "intent"] = "refund"
    report = validate(fixture_spec("intent-transformer"), texts)
    assert _checks(report) == {("intent", "label_values")}
    assert report.failures[0].failure_cases == ["refund"] * 5


def test_values_out_of_the_reference_range_fail(xgb, halves):
    reference, current = halves
    negative = current.assign(support_tickets_30d=-current["support_tickets_30d"] - 1)
    assert ("support_tickets_30d", "non_negative") in _checks(validate(xgb, negative, reference))
    huge = current.assign(duration_s=current["duration_s"] * 100)
    report = validate(xgb, huge, reference)
    assert _checks(report) == {("duration_s", "in_range")}
    assert report.failures[0].failure_cases and "limit 1%" in report.failures[0].message


def test_several_failures_are_counted_in_the_one_line_error(xgb, halves):
    reference, current = halves
    broken = current.assign(converted=None, sessions_7d=float("nan")).drop(columns=["region"])
    with pytest.raises(ValidationError, match=r"\(\+\d+ more\)$") as err:
        raise_for_failures(validate(xgb, broken, reference))
    assert len(err.value.report.failures) >= 3 and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------ skew
def test_covariate_drift_is_flagged_as_skew_and_clean_data_is_not(xgb):
    drifted = _drift_halves((DriftSpec("covariate", MIDPOINT, ("sessions_7d",), 1.0),))
    report = validate(xgb, drifted[1], drifted[0])
    assert report.passed, "skew is a warning by default"
    assert [s.column for s in report.skewed] == ["sessions_7d"]
    assert report.skewed[0].test == "ks" and report.skewed[0].statistic > 0.2

    clean = _drift_halves(())
    clean_report = validate(xgb, clean[1], clean[0])
    assert clean_report.skewed == []
    assert next(s for s in clean_report.skew if s.column == "sessions_7d").statistic < 0.1

    strict = validate(xgb, drifted[1], drifted[0], fail_on_skew=True)
    assert _checks(strict) == {("sessions_7d", "skew_ks")}
    assert validate(xgb, drifted[1], drifted[0], Limits(ks_threshold=0.6)).skewed == []


def test_a_shifted_category_mix_is_flagged_by_psi(xgb, halves):
    reference, current = halves
    shifted = current.assign(plan_tier="enterprise")
    results = {s.column: s for s in validate(xgb, shifted, reference).skew}
    assert results["plan_tier"].test == "psi" and results["plan_tier"].flagged
    assert not results["region"].flagged


# -------------------------------------------------------------------------------------------- outputs
def test_report_renders_as_markdown_and_json(xgb, halves):
    reference, current = halves
    report = validate(xgb, current.assign(sessions_7d=float("nan")), reference)
    markdown = report_markdown(report)
    assert "FAILED (1 failure(s))" in markdown and "| sessions_7d | `max_null_fraction` |" in markdown
    assert "## Skew against the previous training set" in markdown
    data = json.loads(report.to_json())
    assert data["passed"] is False and data["failures"][0]["column"] == "sessions_7d"
    assert data["reference_rows"] == len(reference)


def test_schema_from_column_names_alone_still_fixes_the_label(xgb, conversion_training_set):
    schema = build_schema(xgb, ["session_id", "customer_id", "event_timestamp", "converted"])
    assert "dtype('numeric')" in [c.name for c in schema.columns["converted"].checks]
    assert schema.columns["event_timestamp"].nullable is False
