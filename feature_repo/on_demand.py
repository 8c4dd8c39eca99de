"""On-demand features: computed from other views at request time, identically offline and online."""

import pandas as pd
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64
from feature_views import customer_activity_fv, customer_offer_activity_fv, offer_fv, session_stats_fv


@on_demand_feature_view(
    sources=[customer_activity_fv, session_stats_fv],
    schema=[
        Field(name="messages_per_session_7d", dtype=Float64),
        Field(name="pricing_views_per_session_7d", dtype=Float64),
        Field(name="session_pricing_share", dtype=Float64),
    ],
    mode="pandas",
    description="Ratios that make activity comparable across small and large customers.",
)
def engagement_ratios_odfv(inputs: pd.DataFrame) -> pd.DataFrame:
    sessions = inputs["sessions_7d"].astype("float64").clip(lower=1.0)
    messages = inputs["message_count"].astype("float64").clip(lower=1.0)
    out = pd.DataFrame(index=inputs.index)
    out["messages_per_session_7d"] = inputs["messages_7d"].astype("float64") / sessions
    out["pricing_views_per_session_7d"] = inputs["pricing_page_views_7d"].astype("float64") / sessions
    out["session_pricing_share"] = inputs["pricing_messages"].astype("float64") / messages
    return out


@on_demand_feature_view(
    sources=[customer_offer_activity_fv, offer_fv],
    schema=[
        Field(name="category_impressions_30d", dtype=Int64),
        Field(name="category_clicks_30d", dtype=Int64),
        Field(name="category_click_rate_30d", dtype=Float64),
    ],
    mode="pandas",
    description="The customer's last 30 days with offers of the shown offer's category.",
)
def offer_affinity_odfv(inputs: pd.DataFrame) -> pd.DataFrame:
    # The categories are read from the column names, not imported: Feast runs this function wherever
    # features are served (the feature server, the transformer), from the registry.
    out = pd.DataFrame(index=inputs.index)
    impressions = pd.Series(0, index=inputs.index, dtype="int64")
    clicks = pd.Series(0, index=inputs.index, dtype="int64")
    for column in inputs.columns:
        if column.startswith("impressions_30d_"):
            category = column.removeprefix("impressions_30d_")
            mine = inputs["offer_category"] == category
            impressions[mine] = inputs.loc[mine, column].fillna(0).astype("int64")
            clicks[mine] = inputs.loc[mine, f"clicks_30d_{category}"].fillna(0).astype("int64")
    out["category_impressions_30d"] = impressions
    out["category_clicks_30d"] = clicks
    out["category_click_rate_30d"] = clicks.astype("float64") / impressions.clip(lower=1).astype("float64")
    return out
