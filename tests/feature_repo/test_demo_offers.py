"""The ranking world of the demo data: offers shown in ranked slates during sessions, with clicks that follow
the customer's interest and carry position bias (feature_repo/demo_data/offers.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import ndcg_score

from feature_repo.demo_data.__main__ import build_parser, config_from_args
from feature_repo.demo_data.config import OFFER_CATEGORIES, DriftSpec, GeneratorConfig, streams
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.labels import point_in_time_features, reference
from feature_repo.demo_data.offers import (
    INTEREST,
    SLATE_SHARE,
    SLATE_SIZE,
    draw_catalogue,
    relevance_logits,
)

CONFIG = GeneratorConfig(customers=300)


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    tables = generate(CONFIG)
    sessions = point_in_time_features(
        tables["session_stats"], tables["customer_activity"], tables["customer_profile"]
    )
    shown = tables["offer_impressions"].merge(sessions, on=["session_id", "customer_id"], suffixes=("", "_s"))
    return {**tables, "sessions": sessions, "shown": shown}


def test_each_slate_is_a_ranked_list_of_known_offers(world) -> None:
    impressions, offers, stats = world["offer_impressions"], world["offers"], world["session_stats"]
    assert impressions["impression_id"].is_unique and set(offers["offer_category"]) == set(OFFER_CATEGORIES)
    slates = impressions.groupby("session_id")
    assert (
        slates["position"].apply(sorted)
        == pd.Series([list(range(1, SLATE_SIZE + 1))] * slates.ngroups, index=slates.size().index)
    ).all()
    assert (slates["offer_id"].nunique() == SLATE_SIZE).all()  # no offer twice in a slate
    assert set(impressions["offer_id"]) <= set(offers["offer_id"])
    assert set(impressions["session_id"]) <= set(stats["session_id"])
    assert slates.ngroups == pytest.approx(SLATE_SHARE * len(stats), rel=0.1)
    assert set(impressions["relevance"]) == {0, 1, 2}
    assert ((impressions["relevance"] > 0) == (impressions["clicked"] == 1)).all()
    when = impressions.merge(stats[["session_id", "event_timestamp"]], on="session_id", suffixes=("", "_s"))
    assert (when["event_timestamp"] == when["event_timestamp_s"]).all()  # shown during the session


def test_clicks_carry_position_bias(world) -> None:
    # The logging policy randomises positions, so an offer's relevance does not depend on where it
    # was shown: per offer, the click rate at the top over the rate at the bottom is the position bias.
    impressions = world["offer_impressions"]
    top = impressions[impressions["position"] == 1].groupby("offer_id")["clicked"].mean()
    bottom = impressions[impressions["position"] >= SLATE_SIZE - 1].groupby("offer_id")["clicked"].mean()
    both = pd.concat([top, bottom], axis=1, keys=["top", "bottom"]).dropna()
    assert len(both) > 20
    assert both["top"].mean() > 3 * both["bottom"].mean()


@pytest.mark.parametrize("category", OFFER_CATEGORIES)
def test_clicks_follow_the_customers_interest(world, category) -> None:
    feature, _ = INTEREST[category]
    shown = world["shown"].merge(world["offers"][["offer_id", "offer_category"]], on="offer_id")
    mine = shown[shown["offer_category"] == category]
    low, high = mine[feature].quantile([1 / 3, 2 / 3])
    rates = mine.groupby(
        np.where(mine[feature] >= high, "high", np.where(mine[feature] <= low, "low", "mid"))
    )
    ctr = rates["clicked"].mean()
    assert ctr["high"] > 1.5 * ctr["low"], ctr.to_dict()


def test_a_ranker_learns_what_popularity_cannot(world) -> None:
    """Fitted on the logged clicks (position as a feature, scored at position 1), a ranker orders held-out
    slates closer to the true relevance than the offers' click rates do (NDCG@5 against the latent
    relevance, which only the generator knows)."""
    offers = world["offers"]
    _, quality = draw_catalogue(CONFIG, streams(CONFIG.seed)["offers"])
    shown = world["shown"]
    truth = relevance_logits(shown, offers, quality, reference(world["sessions"]))
    shown = shown.assign(
        gain=1 / (1 + np.exp(-truth[np.arange(len(shown)), shown["offer_id"].to_numpy() - 1]))
    )
    table = shown.merge(
        offers[["offer_id", "offer_category", "offer_tier", "offer_price_usd"]], on="offer_id"
    )
    for column in ("offer_category", "offer_tier", "plan_tier"):
        table[column] = table[column].astype("category").cat.codes
    features = [
        *(f for f, _ in INTEREST.values()),
        "plan_tier",
        "offer_tier",
        "offer_category",
        "offer_price_usd",
        "position",
    ]
    sessions = np.sort(table["session_id"].unique())
    held_out = table["session_id"].isin(sessions[int(0.7 * len(sessions)) :])
    train, test = table[~held_out], table[held_out]
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(
        train[features], train["clicked"]
    )
    test = test.assign(
        model=model.predict_proba(test[features].assign(position=1))[:, 1],
        popularity=test["offer_id"].map(train.groupby("offer_id")["clicked"].mean()).fillna(0.0),
    )

    def ndcg(column: str) -> float:
        return float(
            np.mean([ndcg_score([s["gain"]], [s[column]], k=5) for _, s in test.groupby("session_id")])
        )

    assert ndcg("model") > ndcg("popularity") + 0.08, (ndcg("model"), ndcg("popularity"))


def test_customer_offer_activity_counts_the_30_days_before_each_snapshot(world) -> None:
    activity, impressions = world["customer_offer_activity"], world["offer_impressions"]
    category = impressions["offer_id"].map(world["offers"].set_index("offer_id")["offer_category"])
    rows = activity.sample(40, random_state=0)
    for _, row in rows.iterrows():
        at = row["event_timestamp"]
        mine = impressions[
            (impressions["customer_id"] == row["customer_id"])
            & (impressions["event_timestamp"] < at)  # strictly before: no session reads its own clicks
            & (impressions["event_timestamp"] >= at - pd.Timedelta(days=30))
        ]
        for name in OFFER_CATEGORIES:
            shown = mine[category[mine.index] == name]
            assert row[f"impressions_30d_{name}"] == len(shown)
            assert row[f"clicks_30d_{name}"] == shown["clicked"].sum()
    assert (activity.groupby("event_timestamp").size() > 0).all()
    assert activity[[c for c in activity if c.startswith("clicks_")]].to_numpy().sum() > 0


DRIFT_AT = CONFIG.start + (CONFIG.end - CONFIG.start) / 2


def test_popularity_drift_raises_one_categorys_clicks_from_its_start_only(world) -> None:
    drifted = generate(
        GeneratorConfig(customers=300, drift=(DriftSpec("popularity", DRIFT_AT, ("security",), 2.0),))
    )["offer_impressions"]
    clean = world["offer_impressions"]
    before = clean["event_timestamp"] < DRIFT_AT
    pd.testing.assert_frame_equal(drifted[before], clean[before])  # the same draws: nothing before moves
    security = set(world["offers"].loc[world["offers"]["offer_category"] == "security", "offer_id"])
    after = ~before & clean["offer_id"].isin(security)
    assert drifted.loc[after, "clicked"].mean() > 1.5 * clean.loc[after, "clicked"].mean()
    others = ~before & ~clean["offer_id"].isin(security)
    assert drifted.loc[others, "clicked"].mean() == pytest.approx(
        clean.loc[others, "clicked"].mean(), rel=0.1
    )


def test_new_offers_launch_at_the_drift_start_and_are_shown_only_after_it() -> None:
    tables = generate(
        GeneratorConfig(
            customers=300, drift=(DriftSpec("new_offers", DRIFT_AT, ("analytics", "security"), 3),)
        )
    )
    offers, impressions = tables["offers"], tables["offer_impressions"]
    new = offers[offers["event_timestamp"] == pd.Timestamp(DRIFT_AT)]
    assert len(offers) == 48 + 6 and sorted(new["offer_category"]) == ["analytics"] * 3 + ["security"] * 3
    shown = impressions[impressions["offer_id"].isin(new["offer_id"])]
    assert len(shown) > 0 and (shown["event_timestamp"] >= pd.Timestamp(DRIFT_AT)).all()
    old = impressions[
        ~impressions["offer_id"].isin(new["offer_id"]) & (impressions["event_timestamp"] >= DRIFT_AT)
    ]
    assert shown["clicked"].mean() > old["clicked"].mean()  # well liked, unknown to the logging policy


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"kind": "popularity", "features": ()}, "popularity drift needs offer categories"),
        ({"kind": "popularity", "features": ("toys",)}, "unknown offer category 'toys'"),
        ({"kind": "new_offers", "features": ("security",), "magnitude": 1.5}, "a whole number of offers"),
    ],
)
def test_bad_offer_drift_is_a_one_line_value_error(kwargs, named) -> None:
    with pytest.raises(ValueError, match=named) as caught:
        DriftSpec(start=DRIFT_AT, **kwargs)
    assert "\n" not in str(caught.value)


def test_the_cli_flags_describe_offer_drift() -> None:
    args = build_parser().parse_args(
        [
            "--popularity-drift",
            "security, analytics",
            "--drift-magnitude",
            "1.5",
            "--new-offers",
            "onboarding",
        ]
    )
    popularity, new = config_from_args(args).drift
    assert (popularity.kind, popularity.features, popularity.magnitude) == (
        "popularity",
        ("security", "analytics"),
        1.5,
    )
    assert (new.kind, new.features, new.magnitude) == ("new_offers", ("onboarding",), 2.0)
    with pytest.raises(ValueError, match="unknown offer category 'toys'"):
        config_from_args(build_parser().parse_args(["--new-offers", "toys"]))
