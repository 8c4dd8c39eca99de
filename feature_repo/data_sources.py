"""Batch sources: Parquet tables written by the demo generator (locally) or the data platform (cluster).

FEATURE_DATA_URI points at the folder (or s3:// prefix) holding the tables (core/settings.py). Feast records
the resolved path in the registry when `feast apply` runs, so apply runs with the environment it will serve
(and with the project on PYTHONPATH: `feature_repo.store.feast_environment`).
"""

from feast import FileSource

from core.paths import feature_data_dir
from core.settings import settings


def _data_uri() -> str:
    return str(settings().feature_data_uri or feature_data_dir()).rstrip("/")


def parquet_source(table: str, description: str) -> FileSource:
    """`<FEATURE_DATA_URI>/<table>.parquet` with `event_timestamp` and `created` columns: what a view of
    any model (the demo's or a user's own module beside them) reads."""
    return FileSource(
        name=f"{table}_source",
        path=f"{_data_uri()}/{table}.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        description=description,
    )


customer_profile_source = parquet_source("customer_profile", "Weekly snapshot of each customer's account.")
customer_activity_source = parquet_source(
    "customer_activity", "Daily rolling counts of each customer's activity."
)
session_stats_source = parquet_source("session_stats", "One row per chat session, stamped at its end.")
offers_source = parquet_source("offers", "The offers catalogue: one row per offer, stamped at its launch.")
customer_offer_activity_source = parquet_source(
    "customer_offer_activity", "Weekly: each customer's offer impressions and clicks per category, 30 days."
)
