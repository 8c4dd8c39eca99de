"""Customers: static traits (some latent, never written) and their weekly profile snapshots."""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_repo.demo_data.config import PLAN_TIERS, REGIONS, GeneratorConfig
from feature_repo.demo_data.timeline import ingestion_lag

TIER_SHARE = (0.4, 0.3, 0.2, 0.1)
REGION_SHARE = (0.35, 0.45, 0.2)
TIER_MEDIAN_COMPANY_SIZE = np.array([6.0, 20.0, 90.0, 1200.0])
TIER_MONTHLY_PRICE = np.array([0.0, 49.0, 199.0, 1500.0])
# Regions are served from different clusters: APAC answers a bit slower.
REGION_RESPONSE_FACTOR = np.array([1.0, 0.9, 1.3])
FIRST_CUSTOMER_ID = 1


def draw_customers(config: GeneratorConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One row per customer with the traits the other tables are drawn from.

    `engagement` drives how often a customer chats and looks at pricing (and so converts);
    `churn_risk` drives support tickets and cancellation talk. Both are latent: no table has them.
    """
    n = config.customers
    engagement = rng.standard_normal(n)
    churn_risk = rng.standard_normal(n)
    tier = rng.choice(len(PLAN_TIERS), size=n, p=TIER_SHARE)
    region = rng.choice(len(REGIONS), size=n, p=REGION_SHARE)
    noise = rng.standard_normal((6, n))
    company_size = np.maximum(1, np.round(TIER_MEDIAN_COMPANY_SIZE[tier] * np.exp(0.7 * noise[0])))
    return pd.DataFrame(
        {
            "customer_id": np.arange(FIRST_CUSTOMER_ID, FIRST_CUSTOMER_ID + n, dtype="int64"),
            "tier": tier,
            "region": region,
            "company_size": company_size.astype("int64"),
            "tenure_at_start": rng.integers(14, 1500, size=n).astype("int64"),
            "price_per_day": TIER_MONTHLY_PRICE[tier] / 30.0 * np.exp(0.25 * noise[1]),
            "engagement": engagement,
            "churn_risk": churn_risk,
            "session_rate": 0.2 * np.exp(0.45 * engagement + 0.3 * noise[2]),
            "message_mean": 4.0 * np.exp(0.15 * engagement + 0.2 * noise[3]),
            "pricing_view_rate": 0.12 * np.exp(0.6 * engagement + 0.4 * noise[4]),
            "ticket_rate": 0.02 * np.exp(0.5 * churn_risk + 0.4 * noise[5]),
            "response_s": 4.0 * REGION_RESPONSE_FACTOR[region] * np.exp(0.3 * rng.standard_normal(n)),
        }
    )


def profile_snapshots(
    customers: pd.DataFrame, config: GeneratorConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Weekly snapshots from `start`: tenure and lifetime value grow, the rest stays put."""
    weeks = pd.date_range(config.start, config.end, freq="7D", inclusive="left")
    n = len(customers)
    week_index = np.repeat(np.arange(len(weeks)), n)
    tenure = np.tile(customers["tenure_at_start"].to_numpy(), len(weeks)) + 7 * week_index
    price = np.tile(customers["price_per_day"].to_numpy(), len(weeks))
    event_timestamp = weeks[week_index]
    frame = pd.DataFrame(
        {
            "customer_id": np.tile(customers["customer_id"].to_numpy(), len(weeks)),
            "plan_tier": np.asarray(PLAN_TIERS, dtype=object)[np.tile(customers["tier"], len(weeks))],
            "region": np.asarray(REGIONS, dtype=object)[np.tile(customers["region"], len(weeks))],
            "company_size": np.tile(customers["company_size"].to_numpy(), len(weeks)),
            "tenure_days": tenure.astype("int64"),
            "lifetime_value": np.round(price * tenure, 2),
            "event_timestamp": event_timestamp,
        }
    )
    frame["created"] = frame["event_timestamp"] + ingestion_lag(rng, len(frame))
    return frame
