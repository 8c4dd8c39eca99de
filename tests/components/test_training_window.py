"""Each model trains on its own spec's window: a rolling `lookback_days` ends at the newest row of the
model's label table (not at the demo data's range, not at today), unless the run passes `--start/--end`.

The label table here is a user's: timestamps in 2027 (newer than the demo's), read by the real step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from components.load_features import step
from components.load_features.step import (
    LoadFeaturesError,
    describe_window,
    load_training_set,
    resolve_window,
    window_anchor,
)
from core.settings import variable
from pipelines.local_run import window_source
from tests.helpers.specs import fixture_spec

NEWEST = datetime(2027, 3, 10, 12, 30, tzinfo=UTC)
LOOKBACK = timedelta(days=180)  # the intent-transformer fixture spec's training.window.lookback_days


@pytest.fixture
def label_dir(tmp_path):
    """A `messages` label table: one row a day for 400 days up to NEWEST, so the window cuts it."""
    times = pd.date_range(end=NEWEST, periods=400, freq="D", tz="UTC")
    pd.DataFrame(
        {
            "message_id": range(len(times)),
            "event_timestamp": times,
            "text": [f"message {i}" for i in range(len(times))],
            "intent": ["pricing", "billing"] * (len(times) // 2),
        }
    ).to_parquet(tmp_path / "messages.parquet", index=False)
    return tmp_path


def test_a_rolling_window_ends_at_the_newest_label_row_and_reaches_back_lookback_days(label_dir):
    spec = fixture_spec("intent-transformer")
    anchor = window_anchor(spec, label_dir)
    start, end = resolve_window(spec, now=anchor)
    assert end > NEWEST and end - NEWEST < timedelta(seconds=1)
    assert end - start == LOOKBACK
    frame, lineage = load_training_set(spec, start, end, data_dir=label_dir)
    assert frame["event_timestamp"].max() == NEWEST  # the newest row is inside (end is exclusive)
    assert lineage["rows"] == 180  # one a day: exactly the lookback, nothing of the older 220 days


def test_the_run_passes_a_window_that_overrides_the_spec(label_dir):
    spec = fixture_spec("intent-transformer")
    start, end = resolve_window(spec, "2027-01-01", "2027-02-01", now=window_anchor(spec, label_dir))
    assert (start, end) == (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))


def test_the_step_trains_on_the_spec_window_and_its_log_line_says_so(
    label_dir, tmp_path, monkeypatch, capsys, fixture_specs
):
    monkeypatch.setenv(variable("feature_data_uri"), str(label_dir))
    lineage = step.run("intent-transformer", "", "", str(tmp_path / "out"))
    assert lineage["rows"] == 180
    assert pd.Timestamp(lineage["end"]) > NEWEST
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("training set for")]
    assert line.startswith("training set for intent-transformer: 180 rows, 2026-09-11 12:30 .. 2027-03-10")
    assert "training.window.lookback_days=180, ending at the newest row of label table 'messages'" in line


def test_the_log_names_an_explicit_window_as_the_runs():
    spec = fixture_spec("intent-transformer")
    assert describe_window(spec, "2027-01-01", "") == "the run's --start/--end (2027-01-01 .. spec)"
    assert "--start 2027-01-01" in window_source("2027-01-01", "")
    assert "each model's spec training.window" in window_source("", "")


def test_a_window_without_rows_names_the_spec_field_to_change(label_dir):
    spec = fixture_spec("intent-transformer")
    with pytest.raises(LoadFeaturesError) as err:
        load_training_set(spec, "2020-01-01", "2020-02-01", data_dir=label_dir)
    assert "change intent-transformer.yaml training.window or the run's --start/--end" in str(err.value)
    assert "\n" not in str(err.value)


def test_an_empty_label_table_is_a_one_line_error(tmp_path):
    spec = fixture_spec("intent-transformer")
    empty = pd.DataFrame(
        {"message_id": [], "event_timestamp": pd.to_datetime([], utc=True), "text": [], "intent": []}
    )
    empty.to_parquet(tmp_path / "messages.parquet", index=False)
    with pytest.raises(
        LoadFeaturesError, match=r"label dataset 'messages' at .*messages\.parquet has no rows$"
    ):
        window_anchor(spec, tmp_path)


def test_a_run_without_models_takes_every_spec_in_the_spec_folder(fixture_specs):
    from pipelines.local_run import discovered_models

    assert discovered_models() == sorted(p.stem for p in fixture_specs.glob("*.yaml"))
