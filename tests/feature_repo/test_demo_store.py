"""The demo data through the real Feast repository: what `make run` sets up, at a small size."""

from __future__ import annotations

import pandas as pd
import pytest

from core.spec.model import DEFAULT_SPEC_DIR, load_specs
from feature_repo import store
from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import write_tables
from tests.helpers.demo_features import DEMO_FEATURE_VIEWS
from tests.helpers.specs import DEMO_CLASSIFIERS


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("FEATURE_DATA_URI", raising=False)
        config = GeneratorConfig(customers=60)
        write_tables(config, generate(config), home / "data")
        store.bootstrap(views=DEMO_FEATURE_VIEWS)
        yield store.open_store(), home


def _feature_service_specs():
    return [
        spec for spec in load_specs(DEFAULT_SPEC_DIR, names=DEMO_CLASSIFIERS) if spec.inputs.feature_service
    ]


def test_every_spec_names_a_registered_feature_service_with_its_slices(demo_store):
    fs, _ = demo_store
    for spec in _feature_service_specs():
        service = fs.get_feature_service(spec.inputs.feature_service)
        names = {
            feature.name for projection in service.feature_view_projections for feature in projection.features
        }
        missing = set(spec.evaluation.slices) - names
        assert not missing, f"{spec.name}: slice columns {missing} are not in {service.name}"


def test_training_rows_for_each_service_are_mostly_complete(demo_store):
    fs, home = demo_store
    labels = pd.read_parquet(home / "data" / "conversions.parquet").head(300)
    entity_df = labels[["session_id", "customer_id", "event_timestamp", "converted"]]
    for spec in _feature_service_specs():
        frame = fs.get_historical_features(
            entity_df=entity_df, features=fs.get_feature_service(spec.inputs.feature_service)
        ).to_df()
        assert len(frame) == len(entity_df), f"{spec.name}: Feast dropped entity rows"
        features = frame.drop(columns=["session_id", "customer_id", "event_timestamp", "converted"])
        assert features["message_count"].notna().all(), "every label row has its own session stats"
        assert features.notna().mean().min() > 0.8, f"{spec.name}: too many missing values"


def test_online_store_serves_the_latest_session_of_a_customer(demo_store):
    fs, home = demo_store
    sessions = pd.read_parquet(home / "data" / "session_stats.parquet")
    latest = sessions.sort_values("event_timestamp").iloc[-1]
    online = fs.get_online_features(
        features=fs.get_feature_service("conversion_xgboost_v1"),
        entity_rows=[{"customer_id": int(latest.customer_id), "session_id": int(latest.session_id)}],
    ).to_dict()
    assert online["message_count"] == [int(latest.message_count)]
    assert online["duration_s"][0] == pytest.approx(latest.duration_s)
    assert online["plan_tier"][0] in {"free", "starter", "pro", "enterprise"}


def test_bootstrap_a_second_time_does_nothing(demo_store, capsys):
    store.bootstrap(views=DEMO_FEATURE_VIEWS)
    printed = capsys.readouterr().out
    assert "definitions unchanged, skipped" in printed
    assert "already holds this data, skipped" in printed
