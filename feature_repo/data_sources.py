"""Batch sources: Parquet tables written by the demo generator (locally) or the data platform (cluster).

FEATURE_DATA_URI points at the folder (or s3:// prefix) holding the tables. Feast records the resolved
path in the registry when `feast apply` runs, so apply runs with the environment it will serve.
"""

import os
from pathlib import Path

from feast import FileSource


def _data_uri() -> str:
    explicit = os.environ.get("FEATURE_DATA_URI")
    if explicit:
        return explicit.rstrip("/")
    state = os.environ.get("MLOPS_HOME") or str(Path(__file__).resolve().parent.parent / ".local")
    return f"{state}/data"


def _parquet_source(table: str, description: str) -> FileSource:
    return FileSource(
        name=f"{table}_source",
        path=f"{_data_uri()}/{table}.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        description=description,
    )


customer_profile_source = _parquet_source("customer_profile", "Weekly snapshot of each customer's account.")
customer_activity_source = _parquet_source(
    "customer_activity", "Daily rolling counts of each customer's activity."
)
session_stats_source = _parquet_source("session_stats", "One row per chat session, stamped at its end.")
