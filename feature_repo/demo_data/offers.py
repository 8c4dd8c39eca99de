"""Offers shown during a session, the ranking models' world: a catalogue, and for some sessions a slate of
offers in positions with the customer's clicks.

How relevant offer o is to the customer in session s (a logit):

    QUALITY_o + INTEREST_WEIGHT[c] * z_f(s) for the offer's category c and its feature f
              - PLAN_GAP_PENALTY * max(0, plan tier the offer is for - the customer's plan tier)

where z_f is the session's point-in-time feature, transformed and standardised as the conversion label's
(labels.py: the undrifted reference, so covariate drift moves relevance through the same relation).
A customer reading the pricing page a lot cares for the pricing guide, one with many support tickets for
the support plan, a large company for security, and so on: relevance is learnable from customer and offer
features, and a global popularity ranking cannot know it.

Clicks carry position bias: a shown offer is examined with probability 1 / position ** POSITION_BIAS and,
if examined, clicked with sigmoid(logit + noise). The graded label is 0 (no click), 1 (clicked) or 2
(clicked and taken up, with sigmoid(logit - TAKE_UP_OFFSET)). The logging policy that chose the slates is
a noisy popularity ranking: Plackett-Luce over each offer's believed popularity (Gumbel top-k), so every
offer reaches every position now and then and position bias can be separated from relevance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_repo.demo_data.config import OFFER_CATEGORIES, PLAN_TIERS, DriftSpec, GeneratorConfig
from feature_repo.demo_data.drift import of_kind
from feature_repo.demo_data.labels import Reference, transform
from feature_repo.demo_data.timeline import ingestion_lag, sigmoid

# The category's interest: which session feature drives it, and how strongly.
# Strong enough that a ranker reading customer and offer features beats popularity clearly (NDCG@5 against
# the true relevance, tests/feature_repo/test_demo_offers.py): the customer's interest outweighs quality.
INTEREST = {
    "pricing_guide": ("pricing_page_views_7d", 1.8),
    "integration": ("sessions_7d", 1.5),
    "security": ("company_size", 1.6),
    "onboarding": ("duration_s", 1.4),
    "analytics": ("messages_7d", 1.4),
    "support_plan": ("support_tickets_30d", 1.8),
}
OFFERS_PER_CATEGORY = 8
SLATE_SIZE = 8
SLATE_SHARE = 0.5  # of the sessions in the window show a slate
BASE_LOGIT = -1.2
QUALITY_SD = 0.4
PLAN_GAP_PENALTY = 0.8
POSITION_BIAS = 1.0
CLICK_NOISE_SD = 0.5
TAKE_UP_OFFSET = 1.5
BELIEF_NOISE_SD = 0.5  # how far the logging policy's popularity is from the offers' true quality
NEW_OFFER_QUALITY = 0.8  # new offers (drift `new_offers`) are well liked on average
CHUNK = 50_000  # sessions per vectorised draw (memory: CHUNK x catalogue floats)

# Column names unique across the feature views (a feature service joins them side by side).
OFFER_COLUMNS = ["offer_id", "offer_category", "offer_tier", "offer_price_usd", "event_timestamp", "created"]
IMPRESSION_COLUMNS = [
    "impression_id",
    "session_id",
    "customer_id",
    "offer_id",
    "position",
    "clicked",
    "relevance",
    "event_timestamp",
]


def draw_catalogue(config: GeneratorConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """The offers and their latent quality, which no table shows: OFFERS_PER_CATEGORY per category
    launched at `config.start`, and those of `new_offers` drift launched at its start."""
    categories = np.repeat(np.arange(len(OFFER_CATEGORIES)), OFFERS_PER_CATEGORY)
    launched = [pd.Timestamp(config.start)] * len(categories)
    size = len(categories)
    tiers = rng.integers(0, len(PLAN_TIERS), size)
    prices = rng.lognormal(np.log(50.0), 0.8, size)
    lag = ingestion_lag(rng, size)
    quality = rng.normal(0.0, QUALITY_SD, size)
    for spec in of_kind(config.drift, "new_offers"):  # drawn after the base catalogue: it stays the same
        new = np.repeat([OFFER_CATEGORIES.index(name) for name in spec.features], int(spec.magnitude))
        categories = np.concatenate([categories, new])
        launched += [pd.Timestamp(spec.start)] * len(new)
        tiers = np.concatenate([tiers, rng.integers(0, len(PLAN_TIERS), len(new))])
        prices = np.concatenate([prices, rng.lognormal(np.log(50.0), 0.8, len(new))])
        lag = lag.append(ingestion_lag(rng, len(new)))
        quality = np.concatenate([quality, rng.normal(NEW_OFFER_QUALITY, QUALITY_SD, len(new))])
    offers = pd.DataFrame(
        {
            "offer_id": np.arange(1, len(categories) + 1, dtype="int64"),
            "offer_category": np.asarray(OFFER_CATEGORIES, dtype=object)[categories],
            "offer_tier": np.asarray(PLAN_TIERS, dtype=object)[tiers],
            "offer_price_usd": np.round(prices * (1 + tiers), 2),
            "event_timestamp": pd.DatetimeIndex(launched),
        }
    )
    offers["created"] = offers["event_timestamp"] + lag  # a feature source's column
    return offers[OFFER_COLUMNS], quality


def relevance_logits(
    sessions: pd.DataFrame,
    offers: pd.DataFrame,
    quality: np.ndarray,
    ref: Reference,
    drift: tuple[DriftSpec, ...] = (),
) -> np.ndarray:
    """[sessions, offers] noiseless relevance logits (module docstring), `popularity` drift included."""
    z = ((transform(sessions) - ref.mean) / ref.std).fillna(0.0)
    category = offers["offer_category"].to_numpy()
    logits = np.tile(BASE_LOGIT + quality, (len(sessions), 1))
    for name, (feature, weight) in INTEREST.items():
        logits[:, category == name] += weight * z[feature].to_numpy()[:, None]
    for spec in of_kind(drift, "popularity"):
        after = (sessions["event_timestamp"] >= pd.Timestamp(spec.start)).to_numpy()
        logits[np.ix_(after, np.isin(category, spec.features))] += spec.magnitude
    tier_index = {tier: index for index, tier in enumerate(PLAN_TIERS)}
    # A session before the customer's first profile snapshot has no plan yet: read as the lowest.
    customer_tier = sessions["plan_tier"].map(tier_index).fillna(0).to_numpy()
    offer_tier = offers["offer_tier"].map(tier_index).to_numpy()
    gap = np.maximum(0, offer_tier[None, :] - customer_tier[:, None])
    return logits - PLAN_GAP_PENALTY * gap


def draw_impressions(
    sessions: pd.DataFrame,
    offers: pd.DataFrame,
    quality: np.ndarray,
    ref: Reference,
    rng: np.random.Generator,
    drift: tuple[DriftSpec, ...] = (),
) -> pd.DataFrame:
    """A slate of SLATE_SIZE offers launched by then for SLATE_SHARE of `sessions` (point-in-time
    features, as the conversion label reads them), with positions, clicks and graded relevance."""
    shown = sessions[rng.random(len(sessions)) < SLATE_SHARE].reset_index(drop=True)
    belief = quality + rng.normal(0.0, BELIEF_NOISE_SD, len(quality))
    base = offers["event_timestamp"] == offers["event_timestamp"].min()
    belief[~base.to_numpy()] = belief[base.to_numpy()].mean()  # the policy knows nothing of new offers
    parts = [
        _slates(shown.iloc[start : start + CHUNK], offers, quality, belief, ref, rng, drift)
        for start in range(0, len(shown), CHUNK)
    ] or [_slates(shown, offers, quality, belief, ref, rng, drift)]
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "impression_id", np.arange(1, len(frame) + 1, dtype="int64"))
    return frame[IMPRESSION_COLUMNS]


def _slates(sessions, offers, quality, belief, ref, rng, drift) -> pd.DataFrame:
    n, k = len(sessions), min(SLATE_SIZE, len(offers))
    launched = (
        offers["event_timestamp"].to_numpy()[None, :] <= sessions["event_timestamp"].to_numpy()[:, None]
    )
    score = np.where(launched, belief[None, :] + rng.gumbel(size=(n, len(offers))), -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    logits = np.take_along_axis(relevance_logits(sessions, offers, quality, ref, drift), order, axis=1)
    positions = np.tile(np.arange(1, k + 1), (n, 1))
    examined = rng.random((n, k)) < 1.0 / positions**POSITION_BIAS
    noise = rng.normal(0.0, CLICK_NOISE_SD, (n, k))
    clicked = examined & (rng.random((n, k)) < sigmoid(logits + noise))
    taken = clicked & (rng.random((n, k)) < sigmoid(logits - TAKE_UP_OFFSET))
    return pd.DataFrame(
        {
            "session_id": np.repeat(sessions["session_id"].to_numpy(), k),
            "customer_id": np.repeat(sessions["customer_id"].to_numpy(), k),
            "offer_id": offers["offer_id"].to_numpy()[order].ravel(),
            "position": positions.ravel().astype("int64"),
            "clicked": clicked.ravel().astype("int64"),
            "relevance": (clicked.astype("int64") + taken.astype("int64")).ravel(),
            "event_timestamp": pd.DatetimeIndex(sessions["event_timestamp"]).repeat(k),
        }
    )


ACTIVITY_WINDOW_DAYS = 30
SNAPSHOT_EVERY_DAYS = 7


def offer_activity_columns() -> list[str]:
    """Per category: the customer's offer impressions and clicks over the last 30 days (wide, so one
    customer row holds them all and an on-demand view picks the shown offer's category)."""
    return [f"{kind}_30d_{category}" for category in OFFER_CATEGORIES for kind in ("impressions", "clicks")]


def customer_offer_activity(
    impressions: pd.DataFrame, offers: pd.DataFrame, config: GeneratorConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Weekly snapshots, for every customer shown a slate before the snapshot, of
    `offer_activity_columns()`: counts of the impressions stamped in the 30 days before the snapshot time
    (strictly before: a session at exactly that time must not read its own clicks)."""
    category = impressions["offer_id"].map(offers.set_index("offer_id")["offer_category"])
    frame = impressions[["customer_id", "clicked", "event_timestamp"]].assign(category=category)
    window = pd.Timedelta(days=ACTIVITY_WINDOW_DAYS)
    parts = []
    for at in pd.date_range(config.start, config.end, freq=f"{SNAPSHOT_EVERY_DAYS}D", inclusive="left"):
        before = frame[frame["event_timestamp"] < at]
        recent = before[before["event_timestamp"] >= at - window]
        grouped = recent.groupby(["customer_id", "category"])["clicked"]
        counts = pd.concat({"impressions": grouped.size(), "clicks": grouped.sum()}, axis=1).unstack(
            "category"
        )
        snapshot = pd.DataFrame({"customer_id": np.sort(before["customer_id"].unique())})
        for category_name in OFFER_CATEGORIES:
            for kind in ("impressions", "clicks"):
                values = counts.get((kind, category_name), pd.Series(dtype="int64"))
                snapshot[f"{kind}_30d_{category_name}"] = snapshot["customer_id"].map(values).fillna(0)
        parts.append(snapshot.assign(event_timestamp=at))
    columns = ["customer_id", *offer_activity_columns()]
    out = pd.concat(parts, ignore_index=True).astype(dict.fromkeys(columns, "int64"))
    out["created"] = out["event_timestamp"] + ingestion_lag(rng, len(out))
    return out[[*columns, "event_timestamp", "created"]]
