"""Feature views. TTLs follow each table's refresh cadence: an older value is stale, not a feature."""

from datetime import timedelta

from data_sources import (
    customer_activity_source,
    customer_offer_activity_source,
    customer_profile_source,
    offers_source,
    session_stats_source,
)
from entities import customer, offer, session
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from feature_repo.demo_data.offers import offer_activity_columns

customer_profile_fv = FeatureView(
    name="customer_profile_fv",
    entities=[customer],
    ttl=timedelta(days=14),  # weekly snapshots: one missed refresh is tolerated, two are not
    schema=[
        Field(name="plan_tier", dtype=String),
        Field(name="region", dtype=String),
        Field(name="company_size", dtype=Int64),
        Field(name="tenure_days", dtype=Int64),
        Field(name="lifetime_value", dtype=Float64),
    ],
    source=customer_profile_source,
    online=True,
    tags={"owner": "growth-ml", "cadence": "weekly"},
)

customer_activity_fv = FeatureView(
    name="customer_activity_fv",
    entities=[customer],
    ttl=timedelta(days=2),  # daily snapshots
    schema=[
        Field(name="sessions_7d", dtype=Int64),
        Field(name="messages_7d", dtype=Int64),
        Field(name="pricing_page_views_7d", dtype=Int64),
        Field(name="support_tickets_30d", dtype=Int64),
        Field(name="avg_response_time_s", dtype=Float64),
    ],
    source=customer_activity_source,
    online=True,
    tags={"owner": "growth-ml", "cadence": "daily"},
)

session_stats_fv = FeatureView(
    name="session_stats_fv",
    entities=[session],
    ttl=timedelta(hours=6),  # written when a session ends; a prediction follows within minutes
    schema=[
        Field(name="message_count", dtype=Int64),
        Field(name="duration_s", dtype=Float64),
        Field(name="sentiment_score", dtype=Float64),
        Field(name="pricing_messages", dtype=Int64),
    ],
    source=session_stats_source,
    online=True,
    tags={"owner": "growth-ml", "cadence": "per-session"},
)

offer_fv = FeatureView(
    name="offer_fv",
    entities=[offer],
    ttl=timedelta(0),  # Feast: 0 = never expires; an offer's attributes hold until a new row replaces them
    schema=[
        Field(name="offer_category", dtype=String),
        Field(name="offer_tier", dtype=String),
        Field(name="offer_price_usd", dtype=Float64),
    ],
    source=offers_source,
    online=True,
    tags={"owner": "growth-ml", "cadence": "on-change"},
)

customer_offer_activity_fv = FeatureView(
    name="customer_offer_activity_fv",
    entities=[customer],
    ttl=timedelta(days=14),  # weekly snapshots: one missed refresh is tolerated, two are not
    schema=[Field(name=name, dtype=Int64) for name in offer_activity_columns()],
    source=customer_offer_activity_source,
    online=True,
    tags={"owner": "growth-ml", "cadence": "weekly"},
)
