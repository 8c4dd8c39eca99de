"""Build every demo table in memory from a `GeneratorConfig`."""

from __future__ import annotations

import pandas as pd

from feature_repo.demo_data.activity import activity_snapshots
from feature_repo.demo_data.config import INTENTS, TABLES, GeneratorConfig, streams
from feature_repo.demo_data.customers import draw_customers, profile_snapshots
from feature_repo.demo_data.drift import apply_covariate_drift
from feature_repo.demo_data.labels import draw_conversions, point_in_time_features, reference
from feature_repo.demo_data.offers import customer_offer_activity, draw_catalogue, draw_impressions
from feature_repo.demo_data.sessions import draw_messages, draw_sessions
from feature_repo.demo_data.texts import render_texts

MESSAGE_COLUMNS = ["message_id", "session_id", "customer_id", "event_timestamp", "text", "intent"]


def _messages_with_text(messages: pd.DataFrame, rng) -> pd.DataFrame:
    codes = pd.Categorical(messages["intent"], categories=INTENTS).codes.astype("int64")
    return messages.assign(text=render_texts(codes, rng))[MESSAGE_COLUMNS]


def generate(config: GeneratorConfig | None = None) -> dict[str, pd.DataFrame]:
    """All tables, keyed by the names in `TABLES`. Same config, same frames, bit for bit."""
    config = config or GeneratorConfig()
    rng = streams(config.seed)
    customers = draw_customers(config, rng["customers"])
    profile = profile_snapshots(customers, config, rng["profile"])
    sessions = draw_sessions(customers, config, rng["sessions"])
    activity = activity_snapshots(customers, sessions, config, rng["activity"])
    in_window = sessions[sessions["in_window"]].reset_index(drop=True)
    messages, stats = draw_messages(in_window, customers, config, rng["messages"])
    messages = _messages_with_text(messages, rng["texts"])
    features = {"customer_profile": profile, "customer_activity": activity, "session_stats": stats}
    ref = reference(point_in_time_features(stats, activity, profile))
    drifted = apply_covariate_drift(features, config.drift)
    seen = point_in_time_features(
        drifted["session_stats"], drifted["customer_activity"], drifted["customer_profile"]
    )
    conversions = draw_conversions(seen, ref, config.drift, rng["labels"])
    offers, quality = draw_catalogue(config, rng["offers"])
    impressions = draw_impressions(seen, offers, quality, ref, rng["offers"], config.drift)
    offer_activity = customer_offer_activity(impressions, offers, config, rng["offers"])
    tables = {
        **drifted,
        "conversions": conversions,
        "messages": messages,
        "offers": offers,
        "offer_impressions": impressions,
        "customer_offer_activity": offer_activity,
    }
    return {name: tables[name] for name in TABLES}
