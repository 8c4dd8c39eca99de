"""The Feast repository on its real local store: point-in-time joins, TTLs, online reads, on-demand features.

Small hand-made tables make every expected value known in advance; the store, the apply and the
materialization are Feast's own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from feature_repo import store
from feature_repo.demo_data.config import OFFER_CATEGORIES
from tests.helpers.demo_features import DEMO_FEATURE_VIEWS

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["created"] = frame.get("created", frame["event_timestamp"] + timedelta(minutes=5))
    return frame


def _offer_counts(**seen: tuple[int, int]) -> dict[str, int]:
    """The wide per-category columns: (impressions, clicks) for the named categories, 0 for the others."""
    counts = {}
    for category in OFFER_CATEGORIES:
        impressions, clicks = seen.get(category, (0, 0))
        counts |= {f"impressions_30d_{category}": impressions, f"clicks_30d_{category}": clicks}
    return counts


def _write_tables(data_dir) -> None:
    data_dir.mkdir(parents=True)
    profile = _frame(
        [
            dict(
                customer_id=1,
                plan_tier="pro",
                region="emea",
                company_size=40,
                tenure_days=100,
                lifetime_value=900.0,
                event_timestamp=T0,
            ),
            dict(
                customer_id=1,
                plan_tier="enterprise",
                region="emea",
                company_size=45,
                tenure_days=107,
                lifetime_value=1500.0,
                event_timestamp=T0 + timedelta(days=7),
            ),
            dict(
                customer_id=2,
                plan_tier="free",
                region="apac",
                company_size=3,
                tenure_days=10,
                lifetime_value=0.0,
                event_timestamp=T0,
            ),
        ]
    )
    activity = _frame(
        [
            dict(
                customer_id=1,
                sessions_7d=day,
                messages_7d=10 * day,
                pricing_page_views_7d=day // 2,
                support_tickets_30d=1,
                avg_response_time_s=2.0 + day,
                event_timestamp=T0 + timedelta(days=day),
            )
            for day in range(1, 6)
        ]
        + [
            dict(
                customer_id=2,
                sessions_7d=0,
                messages_7d=0,
                pricing_page_views_7d=0,
                support_tickets_30d=0,
                avg_response_time_s=1.0,
                event_timestamp=T0 + timedelta(days=1),
            )
        ]
    )
    # A late correction: same event time, later `created`; Feast must prefer it.
    correction = activity[activity.sessions_7d == 2].copy()
    correction["avg_response_time_s"] = 99.0
    correction["created"] = correction["created"] + timedelta(hours=1)
    activity = pd.concat([activity, correction], ignore_index=True)
    sessions = _frame(
        [
            dict(
                session_id=10,
                customer_id=1,
                message_count=8,
                duration_s=300.0,
                sentiment_score=0.5,
                pricing_messages=2,
                event_timestamp=T0 + timedelta(days=3, hours=12),
            ),
            dict(
                session_id=11,
                customer_id=1,
                message_count=4,
                duration_s=120.0,
                sentiment_score=-0.2,
                pricing_messages=0,
                event_timestamp=T0 + timedelta(days=19, hours=12),
            ),
            dict(
                session_id=12,
                customer_id=1,
                message_count=5,
                duration_s=200.0,
                sentiment_score=0.1,
                pricing_messages=1,
                event_timestamp=T0 + timedelta(days=5, hours=6),
            ),
        ]
    )
    # Offer 7 is repriced on day 10: a slate shown before that reads the launch price.
    offers = _frame(
        [
            dict(
                offer_id=7,
                offer_category="security",
                offer_tier="pro",
                offer_price_usd=90.0,
                event_timestamp=T0,
            ),
            dict(
                offer_id=7,
                offer_category="security",
                offer_tier="pro",
                offer_price_usd=120.0,
                event_timestamp=T0 + timedelta(days=10),
            ),
            dict(
                offer_id=8,
                offer_category="onboarding",
                offer_tier="free",
                offer_price_usd=0.0,
                event_timestamp=T0,
            ),
        ]
    )
    # Customer 1's offer activity, weekly: security offers seen 4 times, clicked once, by day 7.
    offer_activity = _frame(
        [
            dict(customer_id=1, **_offer_counts(security=(2, 0)), event_timestamp=T0),
            dict(
                customer_id=1,
                **_offer_counts(security=(4, 1), onboarding=(3, 3)),
                event_timestamp=T0 + timedelta(days=7),
            ),
        ]
    )
    for name, table in (
        ("customer_profile", profile),
        ("customer_activity", activity),
        ("session_stats", sessions),
        ("offers", offers),
        ("customer_offer_activity", offer_activity),
    ):
        table.to_parquet(data_dir / f"{name}.parquet", index=False)
    manifest = {"start": (T0 - timedelta(days=1)).isoformat(), "end": (T0 + timedelta(days=30)).isoformat()}
    (data_dir / "manifest.json").write_text(pd.Series(manifest).to_json())


@pytest.fixture(scope="module")
def feature_store(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlops_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("FEATURE_DATA_URI", raising=False)
        _write_tables(home / "data")
        assert store.apply() is True
        assert store.materialize(views=DEMO_FEATURE_VIEWS) is not None
        yield store.open_store()


def _historical(fs, service: str, rows: list[dict]) -> pd.DataFrame:
    entity_df = pd.DataFrame(rows)
    features = fs.get_feature_service(service)
    return fs.get_historical_features(entity_df=entity_df, features=features).to_df().set_index("session_id")


def test_point_in_time_join_never_uses_values_stamped_after_the_label(feature_store):
    label_time = T0 + timedelta(days=3, hours=12)
    frame = _historical(
        feature_store,
        "conversion_xgboost_v1",
        [dict(session_id=10, customer_id=1, event_timestamp=label_time)],
    )
    row = frame.loc[10]
    assert row["sessions_7d"] == 3, "the day-3 snapshot is the latest at or before the label time"
    assert row["plan_tier"] == "pro", "the enterprise snapshot of day 7 is in the label's future"
    assert row["pricing_messages"] == 2


def test_values_older_than_the_ttl_are_dropped(feature_store):
    late = T0 + timedelta(days=19, hours=12)
    row = _historical(
        feature_store, "conversion_xgboost_v1", [dict(session_id=11, customer_id=1, event_timestamp=late)]
    ).loc[11]
    assert pd.isna(row["sessions_7d"]), "last activity snapshot is 14 days old, TTL is 2 days"
    assert row["plan_tier"] == "enterprise", (
        "profile snapshot of day 7 is 12.5 days old, within its 14-day TTL"
    )
    assert row["message_count"] == 4


def test_a_late_correction_wins_over_the_original_row(feature_store):
    row = _historical(
        feature_store,
        "conversion_xgboost_v1",
        [dict(session_id=10, customer_id=1, event_timestamp=T0 + timedelta(days=2, hours=1))],
    ).loc[10]
    assert row["avg_response_time_s"] == 99.0


def test_online_store_returns_the_latest_materialized_values(feature_store):
    online = feature_store.get_online_features(
        features=feature_store.get_feature_service("conversion_xgboost_v1"),
        entity_rows=[{"customer_id": 1, "session_id": 12}, {"customer_id": 2, "session_id": 10}],
    ).to_dict()
    assert online["sessions_7d"] == [5, 0]
    assert online["plan_tier"] == ["enterprise", "free"]
    assert online["message_count"] == [5, 8]


def test_on_demand_features_are_the_same_offline_and_online(feature_store):
    names = ["messages_per_session_7d", "pricing_views_per_session_7d", "session_pricing_share"]
    offline = _historical(
        feature_store,
        "conversion_xgboost_v1",
        [dict(session_id=12, customer_id=1, event_timestamp=T0 + timedelta(days=5, hours=6))],
    )
    online = feature_store.get_online_features(
        features=[f"engagement_ratios_odfv:{name}" for name in names],
        entity_rows=[{"customer_id": 1, "session_id": 12}],
    ).to_dict()
    for name in names:
        assert online[name][0] == pytest.approx(offline.loc[12, name])
    assert online["messages_per_session_7d"][0] == pytest.approx(50 / 5)
    assert online["session_pricing_share"][0] == pytest.approx(1 / 5)


def test_second_bootstrap_skips_finished_work(feature_store, capsys):
    assert store.apply() is False
    assert store.materialize(views=DEMO_FEATURE_VIEWS) is None


def test_every_feature_service_resolves(feature_store):
    # The demo's services by name: a user's service beside them is theirs to test.
    services = {service.name for service in feature_store.list_feature_services()}
    demo = {"conversion_xgboost_v1", "conversion_sklearn_v1", "conversion_mlp_v1", "offer_ranker_xgboost_v1"}
    assert demo <= services
    for name in demo:
        assert feature_store.get_feature_service(name).feature_view_projections


def test_cluster_config_validates_with_feasts_own_model(monkeypatch):
    from feast.repo_config import load_repo_config

    for name in (
        "FEAST_REGISTRY_USER",
        "FEAST_REGISTRY_PASSWORD",
        "FEAST_REGISTRY_HOST",
        "FEAST_REDIS_HOST",
        "FEAST_REDIS_PASSWORD",
    ):
        monkeypatch.setenv(name, f"dummy-{name.lower()}")
    config = load_repo_config(store.FEATURE_REPO, store.CLUSTER_CONFIG)
    assert config.registry.registry_type == "sql"
    assert config.registry.path.startswith("postgresql+psycopg://dummy-feast_registry_user:")
    assert config.online_store.type == "redis"
    assert config.offline_store.type == "duckdb"


def test_local_config_validates_with_feasts_own_model(tmp_path, monkeypatch):
    from feast.repo_config import load_repo_config

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    config = load_repo_config(store.FEATURE_REPO, store.LOCAL_CONFIG)
    assert config.online_store.type == "sqlite"
    assert config.online_store.path == f"{tmp_path}/feast/online_store.db"
    assert config.offline_store.type == "duckdb"


def test_a_broken_config_is_rejected_by_feast(tmp_path):
    from feast.repo_config import FeastConfigError, load_repo_config

    broken = tmp_path / "feature_store.yaml"
    broken.write_text("project: p\nprovider: local\nonline_store:\n  type: sqlite\n  pathh: x\n")
    with pytest.raises(FeastConfigError, match="pathh"):
        load_repo_config(tmp_path, broken)


def test_offer_features_join_by_offer_id_point_in_time_and_never_expire(feature_store):
    refs = ["offer_fv:offer_category", "offer_fv:offer_tier", "offer_fv:offer_price_usd"]
    shown = pd.DataFrame(
        {
            "offer_id": [7, 7, 8],
            "event_timestamp": [T0 + timedelta(days=3), T0 + timedelta(days=12), T0 + timedelta(days=25)],
        }
    )
    offline = feature_store.get_historical_features(entity_df=shown, features=refs).to_df()
    offline = offline.sort_values(["offer_id", "event_timestamp"]).reset_index(drop=True)
    assert offline["offer_price_usd"].tolist() == [90.0, 120.0, 0.0]  # the reprice is not read before it
    assert offline["offer_category"].tolist() == ["security", "security", "onboarding"]  # 25 days: no TTL
    online = feature_store.get_online_features(features=refs, entity_rows=[{"offer_id": 7}]).to_dict()
    assert online["offer_price_usd"] == [120.0] and online["offer_tier"] == ["pro"]


def test_customer_by_category_offer_features_pick_the_shown_offers_category(feature_store):
    refs = [f"offer_affinity_odfv:{name}" for name in ("category_impressions_30d", "category_clicks_30d")]
    refs.append("offer_affinity_odfv:category_click_rate_30d")
    pairs = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "offer_id": [7, 7, 8, 7],
            "event_timestamp": [
                T0 + timedelta(days=3),
                T0 + timedelta(days=9),
                T0 + timedelta(days=9),
                T0 + timedelta(days=9),
            ],
        }
    )
    offline = feature_store.get_historical_features(entity_df=pairs, features=refs).to_df()
    offline = offline.sort_values(["customer_id", "event_timestamp", "offer_id"]).reset_index(drop=True)
    # Day 3 reads the day-0 snapshot (security 2 / 0), day 9 the day-7 one; customer 2 has none: zeros.
    assert offline["category_impressions_30d"].tolist() == [2, 4, 3, 0]
    assert offline["category_clicks_30d"].tolist() == [0, 1, 3, 0]
    assert offline["category_click_rate_30d"].tolist() == pytest.approx([0.0, 0.25, 1.0, 0.0])
    online = feature_store.get_online_features(
        features=refs, entity_rows=[{"customer_id": 1, "offer_id": 7}, {"customer_id": 1, "offer_id": 8}]
    ).to_dict()
    assert online["category_impressions_30d"] == [4, 3] and online["category_clicks_30d"] == [1, 3]
