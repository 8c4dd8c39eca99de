"""Build a model's training set: label rows in a time window, joined point-in-time to its features.

The label table (`spec.label.dataset`) supplies the entity rows: one per prediction, stamped with the
prediction time. Feature-service models get their features from Feast's `get_historical_features`, which
only ever uses values stamped at or before each row's `event_timestamp` and within each view's TTL.
Request-field models (the text model) read their raw inputs straight from the label table.

The result follows the training-set contract in components/README.md: entity keys (or the label table's
id column), `event_timestamp` (UTC), the input columns, the label; sorted by event time; plus a lineage
dict that records where the rows came from and a content hash that changes whenever any value does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from core.paths import feature_data_dir
from core.settings import settings
from core.spec.model import ModelSpec, load_specs
from core.timing import timed_step
from core.training_set import TIME_COLUMN, TIME_DTYPE, content_sha256, save_training_set

ANCHOR_MARGIN = timedelta(seconds=1)
"""The window's end is exclusive: one second past the newest row keeps that row in."""


class LoadFeaturesError(ValueError):
    """The training set cannot be built or read; the message is one line naming what and where."""

    def __init__(self, problem: str) -> None:
        super().__init__("load_features: " + " ".join(problem.split()))


# ---------------------------------------------------------------------------------------------- window
def _as_utc(value: datetime | str, what: str) -> datetime:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise LoadFeaturesError(f"window {what} {value!r} is not a date or ISO 8601 timestamp") from exc
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def resolve_window(
    spec: ModelSpec,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """The `[start, end)` window in UTC: explicit values (pipeline parameters) override the spec's window.

    A rolling window given only an explicit end reaches back `lookback_days` from that end. Empty strings
    count as "not given", because that is how an unset KFP string parameter arrives.
    """
    explicit_start = None if start in (None, "") else _as_utc(start, "start")
    explicit_end = None if end in (None, "") else _as_utc(end, "end")
    spec_start, spec_end = spec.training.window.resolve(explicit_end or now)
    start, end = explicit_start or spec_start, explicit_end or spec_end
    if end <= start:
        raise LoadFeaturesError(
            f"{spec.name}: window end {end.isoformat()} is not after start {start.isoformat()}"
        )
    return start, end


# ------------------------------------------------------------------------------------------ label rows
def label_table_location(spec: ModelSpec, data_dir: str | Path | None = None) -> str:
    """`<data_dir>/<dataset>.parquet`; data_dir defaults to FEATURE_DATA_URI (a folder or an s3:// prefix,
    as the Feast sources use it) and then to the local feature data folder."""
    base = str(data_dir or settings().feature_data_uri or feature_data_dir()).rstrip("/")
    return f"{base}/{spec.label.dataset}.parquet"


def _read_label_table(spec: ModelSpec, data_dir: str | Path | None) -> pd.DataFrame:
    location = label_table_location(spec, data_dir)
    if "://" not in location and not Path(location).is_file():
        raise LoadFeaturesError(f"label dataset {spec.label.dataset!r} not found at {location}")
    try:
        table = pd.read_parquet(location)
    except (OSError, ValueError) as exc:
        raise LoadFeaturesError(
            f"cannot read label dataset {spec.label.dataset!r} at {location}: {exc}"
        ) from exc
    needed = [TIME_COLUMN, spec.label.column, *spec.inputs.declared_columns, *spec.label.passenger_columns]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise LoadFeaturesError(f"label dataset {location} lacks column(s) {', '.join(missing)}")
    table[TIME_COLUMN] = pd.to_datetime(table[TIME_COLUMN], utc=True).astype(TIME_DTYPE)
    return table


def id_column(spec: ModelSpec, table: pd.DataFrame) -> str:
    """The label table's row id for request-field models: `<dataset singular>_id` (`messages` ->
    `message_id`), else the first unique `*_id` column."""
    preferred = f"{spec.label.dataset.removesuffix('s')}_id"
    if preferred in table.columns:
        return preferred
    for column in table.columns:
        if column.endswith("_id") and table[column].is_unique:
            return column
    raise LoadFeaturesError(f"label dataset {spec.label.dataset!r} has no id column ({preferred} or *_id)")


def _rows_in_window(spec: ModelSpec, table: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    times = table[TIME_COLUMN]
    rows = table[(times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))]
    if rows.empty:
        raise LoadFeaturesError(
            f"label dataset {spec.label.dataset!r} has no rows in [{start.isoformat()}, {end.isoformat()}) "
            f"(its data spans {_span(times)}): widen the spec's training.window (lookback_days, or "
            "start/end), or set training.window.anchor: newest_row for data that stops before today"
        )
    return rows.reset_index(drop=True)


def _span(times: pd.Series) -> str:
    return "nothing" if times.empty else f"{times.min().isoformat()} .. {times.max().isoformat()}"


# -------------------------------------------------------------------------------------------- features
def service_feature_names(service: Any) -> list[tuple[str, str]]:
    """(view name as Feast prefixes it, feature name) for every feature of a Feast feature service, in
    the service's order."""
    return [
        (projection.name_to_use(), feature.name)
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


def _join_features(spec: ModelSpec, rows: pd.DataFrame, store: Any) -> tuple[pd.DataFrame, list[str]]:
    if store is None:
        from feature_repo.store import open_store  # Feast is slow to import: only when needed

        store = open_store()
    keys = list(spec.inputs.entity_keys)
    entity_df = rows[[*keys, TIME_COLUMN, spec.label.column, *_passengers(spec)]]
    service = store.get_feature_service(spec.inputs.feature_service)
    joined = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    names = service_feature_names(service)
    # Only with full_feature_names=True does Feast prefix columns; strip either way.
    joined = joined.rename(columns={f"{view}__{name}": name for view, name in names})
    inputs = [name for _, name in names]
    missing = [c for c in inputs if c not in joined.columns]
    if missing:
        raise LoadFeaturesError(
            f"feature service {spec.inputs.feature_service!r} returned no column(s) {', '.join(missing)}"
        )
    if len(joined) != len(entity_df):
        raise LoadFeaturesError(
            f"feature service {spec.inputs.feature_service!r} returned {len(joined)} rows "
            f"for {len(entity_df)} entity rows"
        )
    return joined[[*keys, TIME_COLUMN, *inputs, spec.label.column, *_passengers(spec)]], inputs


def _passengers(spec: ModelSpec) -> list[str]:
    """A ranker's group and logged position, carried from the label table (Feast passes entity-frame
    columns through), unless an entity key already carries them."""
    return [c for c in spec.label.passenger_columns if c not in spec.inputs.entity_keys]


def _sorted_by_time(frame: pd.DataFrame, entity_columns: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame[TIME_COLUMN] = pd.to_datetime(frame[TIME_COLUMN], utc=True).astype(TIME_DTYPE)
    # Keys break ties so the row order (and so the content hash) never depends on the offline store.
    order = [TIME_COLUMN, *entity_columns]
    return frame.sort_values(order, kind="mergesort").reset_index(drop=True)


# ----------------------------------------------------------------------------------------- training set
def load_training_set(
    spec: ModelSpec,
    start: datetime,
    end: datetime,
    store: Any = None,
    data_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training set for `spec` over `[start, end)` and its lineage (see the module docstring).

    `store` is a Feast `FeatureStore` (default: `feature_repo.store.open_store()`); `data_dir` holds the
    label tables (default: the feature data folder, FEATURE_DATA_URI on a cluster).
    """
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    rows = _rows_in_window(spec, _read_label_table(spec, data_dir), start, end)
    if spec.inputs.feature_service is not None:
        entity_columns = list(spec.inputs.entity_keys)
        frame, inputs = _join_features(spec, rows, store)
    else:
        entity_columns = [id_column(spec, rows)]
        inputs = list(spec.inputs.declared_columns)
        frame = rows[[*entity_columns, TIME_COLUMN, *inputs, spec.label.column, *_passengers(spec)]]
    frame = _sorted_by_time(frame, entity_columns)
    lineage = {
        "feature_service": spec.inputs.feature_service,
        "label_dataset": spec.label.dataset,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": len(frame),
        "content_sha256": content_sha256(frame),
        "input_columns": inputs,
        "entity_columns": entity_columns,
    }
    return frame, lineage


# --------------------------------------------------------------------------------------- the step
def run(model: str, start: str, end: str, out_path: str) -> dict:
    with timed_step("load_features", model):
        (spec,) = load_specs(names=[model])
        window = resolve_window(spec, start or None, end or None, None if end else spec_anchor(spec))
        frame, lineage = load_training_set(spec, *window)
        save_training_set(frame, lineage, Path(out_path))
        source = lineage["feature_service"] or "request fields"
        span = f"{window[0]:%Y-%m-%d %H:%M} .. {window[1]:%Y-%m-%d %H:%M} ({window_origin(spec, start, end)})"
        print(f"training set for {spec.name}: {lineage['rows']} rows, {span}, from {source}", flush=True)
        return lineage


def window_origin(spec: ModelSpec, start: str, end: str) -> str:
    """Where the window came from, for the log line a user reads when rows are missing."""
    if start or end:
        return "the run's --start/--end"
    window = spec.training.window
    if window.lookback_days is None:
        return "the spec's training.window start/end"
    to = "the newest label row" if window.anchor == "newest_row" else "the run time"
    return f"the spec's training.window: {window.lookback_days} days to {to}"


def spec_anchor(spec: ModelSpec, data_dir: str | Path | None = None) -> datetime | None:
    """Where the spec's rolling window ends when the run gives no end: None (the run time), or just past
    the newest label row with `anchor: newest_row`."""
    if spec.training.window.anchor != "newest_row":
        return None
    return newest_label_time(spec, data_dir) + ANCHOR_MARGIN


def newest_label_time(spec: ModelSpec, data_dir: str | Path | None = None) -> datetime:
    """The newest `event_timestamp` in the model's label table (where an anchored window ends)."""
    location = label_table_location(spec, data_dir)
    try:
        times = pd.read_parquet(location, columns=[TIME_COLUMN])[TIME_COLUMN]
    except (OSError, ValueError, KeyError) as exc:
        raise LoadFeaturesError(f"cannot read {TIME_COLUMN} of label dataset at {location}: {exc}") from exc
    if times.empty:
        raise LoadFeaturesError(f"label dataset {spec.label.dataset!r} at {location} has no rows")
    return pd.to_datetime(times, utc=True).max().to_pydatetime()
