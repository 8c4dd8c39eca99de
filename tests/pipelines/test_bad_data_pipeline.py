"""Bad training data stops the pipeline at validation, with the column and rule named, registers
nothing and leaves the champion where it was. Each case corrupts the real feature data in place (the
`restore_data` fixture puts it back) and runs the real pipeline for the fastest model."""

from __future__ import annotations

import pandas as pd
import pytest

from core.paths import feature_data_dir
from feature_repo.demo_data.writer import data_window as demo_data_window
from pipelines.local_run import run_training

pytestmark = pytest.mark.slow
MODEL = "conversion-sklearn"


def _versions() -> list:
    from mlflow import MlflowClient

    return MlflowClient().search_model_versions(f"name = '{MODEL}'")


def _champion_version() -> str:
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version)


def _rewrite(data_dir, table: str, change) -> None:
    path = data_dir / f"{table}.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def _run_and_expect_validation_failure(*fragments: str, start: str | None = None, end: str | None = None):
    versions, champion = len(_versions()), _champion_version()
    default_start, default_end = demo_data_window(feature_data_dir())
    run = run_training([MODEL], start or default_start, end or default_end, reason="test: bad data")
    (outcome,) = run.outcomes
    assert not run.succeeded
    assert outcome.stage == "failed", outcome
    assert outcome.reasons[0].startswith("validate_data: "), outcome.reasons
    for fragment in fragments:
        assert fragment in outcome.reasons[0], outcome.reasons
    assert len(_versions()) == versions, "nothing may be registered"
    assert _champion_version() == champion, "the champion alias must not move"


def test_a_required_feature_full_of_nulls(first_run, restore_data):
    _rewrite(restore_data, "session_stats", lambda t: t.assign(duration_s=float("nan")))
    _run_and_expect_validation_failure("column 'duration_s'", "max_null_fraction")


def test_a_single_class_label(first_run, restore_data):
    _rewrite(restore_data, "conversions", lambda t: t.assign(converted=0))
    _run_and_expect_validation_failure("label_balance")


def test_a_changed_column_type(first_run, restore_data):
    _rewrite(
        restore_data,
        "customer_activity",
        lambda t: t.assign(avg_response_time_s=t.avg_response_time_s.map("{:.1f}s".format)),
    )
    _run_and_expect_validation_failure("column 'avg_response_time_s'", "dtype")


def test_too_few_rows(first_run):
    _, end = demo_data_window(feature_data_dir())
    start = (pd.Timestamp(end) - pd.Timedelta(days=2)).isoformat()
    _run_and_expect_validation_failure("min_rows", start=start, end=end)
