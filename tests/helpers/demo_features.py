"""The demo feature columns the conversion models train on (feature_repo/feature_views.py), by view, and the
views' TTLs: the component tests join the demo tables point-in-time with them, as Feast would."""

from __future__ import annotations

import pandas as pd

# The demo's feature views (feature_repo/feature_views.py) by name: tests of the demo materialize only these,
# so a user's view beside them (whose table a test's temporary home lacks) turns none of them red.
DEMO_FEATURE_VIEWS = (
    "customer_profile_fv",
    "customer_activity_fv",
    "session_stats_fv",
    "offer_fv",
    "customer_offer_activity_fv",
)

# The feature views' TTLs: an older snapshot is no feature at all.
PROFILE_TTL = pd.Timedelta(days=14)
ACTIVITY_TTL = pd.Timedelta(days=2)
SESSION_TTL = pd.Timedelta(hours=6)

PROFILE_FEATURES = ["plan_tier", "region", "company_size", "tenure_days", "lifetime_value"]
ACTIVITY_FEATURES = [
    "sessions_7d",
    "messages_7d",
    "pricing_page_views_7d",
    "support_tickets_30d",
    "avg_response_time_s",
]
SESSION_FEATURES = ["message_count", "duration_s", "sentiment_score", "pricing_messages"]
RATIO_FEATURES = ["messages_per_session_7d", "pricing_views_per_session_7d", "session_pricing_share"]
CONVERSION_FEATURES = [*PROFILE_FEATURES, *ACTIVITY_FEATURES, *SESSION_FEATURES, *RATIO_FEATURES]
