"""load_features on a real Feast store over the demo data: window, point-in-time join, lineage, files.

The store is stood up once per module in a temporary MLOPS_HOME (`feast apply` as `make run` does it);
expected feature values are recomputed from the raw Parquet with pandas' merge_asof.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from components.load_features.step import (
    LoadFeaturesError,
    load_training_set,
    newest_label_time,
    resolve_window,
    run,
    window_origin,
)
from components.validate_data.validation import validate
from core.training_set import TrainingSetError, load_training_set_file, save_training_set
from feature_repo import store as feature_store
from tests.helpers.demo_home import demo_home
from tests.helpers.specs import fixture_spec

pytestmark = pytest.mark.slow  # `feast apply` and importing Feast take most of a minute on 2 cores

START = datetime(2026, 9, 1, tzinfo=UTC)
END = datetime(2026, 10, 15, tzinfo=UTC)
ACTIVITY_TTL = pd.Timedelta(days=2)
PROFILE_TTL = pd.Timedelta(days=14)
SESSION_TTL = pd.Timedelta(hours=6)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A temporary MLOPS_HOME with the demo data (150 customers) and an applied feature repository."""
    with demo_home(tmp_path_factory.mktemp("mlops_home"), customers=150) as home:
        yield home


@pytest.fixture(scope="module")
def store(home):
    return feature_store.open_store()


@pytest.fixture(scope="module")
def xgboost_set(store):
    return load_training_set(fixture_spec("conversion-xgboost"), START, END, store=store)


def _raw(home, table: str) -> pd.DataFrame:
    return pd.read_parquet(home / "data" / f"{table}.parquet")


def _as_of(rows: pd.DataFrame, table: pd.DataFrame, key: str, columns: list[str], ttl, direction="backward"):
    """The value of `columns` a join picks for each row: latest at or before it (backward), within ttl."""
    right = table.sort_values(["event_timestamp", "created"])[[key, "event_timestamp", *columns]]
    left = rows[[key, "event_timestamp"]].reset_index().sort_values("event_timestamp")
    joined = pd.merge_asof(left, right, on="event_timestamp", by=key, direction=direction, tolerance=ttl)
    return joined.set_index("index").sort_index().rename_axis(None)[columns]


# ---------------------------------------------------------------------------------------------- window
def test_explicit_window_overrides_the_spec_and_rolling_start_follows_an_explicit_end():
    spec = fixture_spec("conversion-xgboost")  # rolling, 90 days
    now = datetime(2026, 11, 1, tzinfo=UTC)
    assert resolve_window(spec, now=now) == (datetime(2026, 8, 3, tzinfo=UTC), now)
    assert resolve_window(spec, "2026-09-01", "2026-10-01T00:00:00Z", now=now) == (
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 10, 1, tzinfo=UTC),
    )
    start, end = resolve_window(spec, "", "2026-10-01", now=now)  # "" = unset KFP parameter
    assert (start, end) == (datetime(2026, 7, 3, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))


def test_window_whose_end_is_not_after_its_start_is_a_one_line_error():
    with pytest.raises(
        LoadFeaturesError, match=r"^load_features: conversion-xgboost: window end .* start"
    ) as err:
        resolve_window(fixture_spec("conversion-xgboost"), "2026-10-01", "2026-10-01")
    assert "\n" not in str(err.value)
    with pytest.raises(LoadFeaturesError, match="not a date"):
        resolve_window(fixture_spec("conversion-xgboost"), "last tuesday")


def test_a_missing_label_table_is_a_one_line_error_naming_its_path(tmp_path):
    with pytest.raises(
        LoadFeaturesError, match=r"label dataset 'messages' not found at .*messages\.parquet$"
    ):
        load_training_set(fixture_spec("intent-transformer"), START, END, data_dir=tmp_path)


# ---------------------------------------------------------------------------------------- feature join
def test_conversion_training_set_has_the_contract_columns_in_order(store, xgboost_set):
    frame, lineage = xgboost_set
    service = [
        f.name
        for p in store.get_feature_service("conversion_xgboost_v1").feature_view_projections
        for f in p.features
    ]
    assert list(frame.columns) == ["session_id", "customer_id", "event_timestamp", *service, "converted"]
    assert lineage["input_columns"] == service
    assert lineage["entity_columns"] == ["session_id", "customer_id"]
    assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["event_timestamp"].is_monotonic_increasing
    assert set(frame["converted"].unique()) == {0, 1}


def test_rows_are_exactly_the_label_rows_inside_the_window(home, xgboost_set):
    frame, lineage = xgboost_set
    labels = _raw(home, "conversions")
    inside = labels[(labels.event_timestamp >= START) & (labels.event_timestamp < END)]
    assert frame["event_timestamp"].min() >= START
    assert frame["event_timestamp"].max() < END
    assert sorted(frame["session_id"]) == sorted(inside["session_id"])
    assert lineage["rows"] == len(frame) == len(inside) > 500
    by_session = inside.set_index("session_id")["converted"]
    assert (frame.set_index("session_id")["converted"] == by_session.reindex(frame["session_id"])).all()


def test_feature_values_come_from_at_or_before_each_rows_timestamp(home, xgboost_set):
    frame, _ = xgboost_set
    checks = [
        ("customer_activity", "customer_id", ["sessions_7d", "avg_response_time_s"], ACTIVITY_TTL),
        ("customer_profile", "customer_id", ["plan_tier", "lifetime_value"], PROFILE_TTL),
        ("session_stats", "session_id", ["duration_s", "sentiment_score"], SESSION_TTL),
    ]
    for table, key, columns, ttl in checks:
        expected = _as_of(frame, _raw(home, table), key, columns, ttl)
        pd.testing.assert_frame_equal(frame[columns], expected, check_dtype=False)
    # The check can fail: a join that peeked at the next snapshot would give other values.
    leaky = _as_of(
        frame, _raw(home, "customer_activity"), "customer_id", ["sessions_7d"], ACTIVITY_TTL, "forward"
    )
    assert (leaky["sessions_7d"] != frame["sessions_7d"]).mean() > 0.2


def test_lineage_hash_is_stable_and_follows_the_window(store, xgboost_set):
    frame, lineage = xgboost_set
    again, lineage_again = load_training_set(fixture_spec("conversion-xgboost"), START, END, store=store)
    assert lineage_again == lineage
    pd.testing.assert_frame_equal(again, frame)
    _, shorter = load_training_set(
        fixture_spec("conversion-xgboost"), START, datetime(2026, 10, 14, tzinfo=UTC), store
    )
    assert shorter["content_sha256"] != lineage["content_sha256"]
    assert shorter["rows"] < lineage["rows"]
    assert lineage["feature_service"] == "conversion_xgboost_v1"
    assert lineage["label_dataset"] == "conversions"
    assert (lineage["start"], lineage["end"]) == (START.isoformat(), END.isoformat())


def test_text_model_reads_id_timestamp_text_and_intent_from_the_label_table(home):
    spec = fixture_spec("intent-transformer")
    frame, lineage = load_training_set(spec, START, END, data_dir=home / "data")
    assert list(frame.columns) == ["message_id", "event_timestamp", "text", "intent"]
    messages = _raw(home, "messages")
    inside = messages[(messages.event_timestamp >= START) & (messages.event_timestamp < END)]
    assert len(frame) == len(inside) and frame["event_timestamp"].is_monotonic_increasing
    assert frame.set_index("message_id")["text"].equals(
        inside.set_index("message_id")["text"].loc[frame["message_id"]]
    )
    assert set(frame["intent"]) <= set(spec.label.classes)
    assert lineage["feature_service"] is None
    assert lineage["input_columns"] == ["text"] and lineage["entity_columns"] == ["message_id"]


def test_an_empty_window_names_the_dataset_and_the_window(home, store):
    with pytest.raises(LoadFeaturesError) as err:
        load_training_set(
            fixture_spec("conversion-xgboost"),
            datetime(2025, 1, 1, tzinfo=UTC),
            datetime(2025, 2, 1, tzinfo=UTC),
            store=store,
        )
    message = str(err.value)
    assert "'conversions'" in message and "2025-01-01T00:00:00+00:00" in message and "\n" not in message
    assert "training.window" in message  # names the spec field to change


def test_an_anchored_window_ends_at_the_models_newest_label_row(home, fixture_specs, tmp_path):
    """No demo default: a run without --start/--end takes the spec's window; the demo's specs end it at
    their own newest label row (`anchor: newest_row`), whatever today is."""
    spec = fixture_spec("intent-transformer")
    assert (spec.training.window.anchor, spec.training.window.lookback_days) == ("newest_row", 180)
    messages = _raw(home, "messages")
    newest = messages["event_timestamp"].max()
    assert newest_label_time(spec, home / "data") == newest.to_pydatetime()
    lineage = run("intent-transformer", "", "", str(tmp_path / "set.parquet"))
    inside = messages[messages.event_timestamp > newest - pd.Timedelta(days=180)]
    assert lineage["rows"] == len(inside) > 0


def test_the_run_log_says_where_the_window_came_from():
    spec = fixture_spec("conversion-xgboost")
    assert window_origin(spec, "", "") == "the spec's training.window: 90 days to the newest label row"
    assert window_origin(spec, "2026-09-01", "") == "the run's --start/--end"
    rolling = spec.training.window.model_copy(update={"anchor": "run_time"})
    at_run = spec.model_copy(update={"training": spec.training.model_copy(update={"window": rolling})})
    assert window_origin(at_run, "", "") == "the spec's training.window: 90 days to the run time"


def test_saved_training_set_round_trips_and_detects_tampering(tmp_path, xgboost_set):
    frame, lineage = xgboost_set
    path = save_training_set(frame, lineage, tmp_path / "set" / "training.parquet", tmp_path / "lineage.json")
    loaded, loaded_lineage = load_training_set_file(path)
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded_lineage == lineage
    assert '"content_sha256"' in (tmp_path / "lineage.json").read_text()
    frame.iloc[:-1].to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(TrainingSetError, match="no lineage metadata"):
        load_training_set_file(tmp_path / "plain.parquet")
    changed = frame.assign(converted=1 - frame["converted"])
    save_training_set(changed, lineage, tmp_path / "tampered.parquet")
    with pytest.raises(TrainingSetError, match="does not match its lineage"):
        load_training_set_file(tmp_path / "tampered.parquet")


def test_loaded_training_set_passes_validation(xgboost_set):
    frame, _ = xgboost_set
    report = validate(fixture_spec("conversion-xgboost"), frame, reference=frame.iloc[: len(frame) // 2])
    assert report.passed, [f.one_line() for f in report.failures]
