"""On-demand features: computed from other views at request time, identically offline and online."""

import pandas as pd
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64
from feature_views import customer_activity_fv, session_stats_fv


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
