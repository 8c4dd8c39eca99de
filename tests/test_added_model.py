"""A user's model added to a copy of the checkout (tests/helpers/own_model.py: its spec and feature view
module) through the suite's discovery paths: the spec folder, the spec metrics, the fast specs the
pipeline tests train, and Feast over the feature repo with only the demo's data present (what the demo's
tests stand up) and then with the user's own tables. None of it may turn a demo test's setup red."""

from __future__ import annotations

import logging
import shutil

import pandas as pd
import pytest

from components.load_features.step import load_training_set, resolve_window, spec_anchor
from core.spec.model import DEFAULT_SPEC_DIR, load_specs
from feature_repo import store
from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import write_tables
from monitoring.spec_metrics import loadable_specs
from tests.helpers import fast_specs as fast_specs_module
from tests.helpers.demo_features import DEMO_FEATURE_VIEWS
from tests.helpers.own_model import FEATURES, OWN_MODEL, OWN_SERVICE, add_own_model, write_own_tables
from tests.helpers.specs import DEMO_CLASSIFIERS, DEMO_MODELS

pytestmark = pytest.mark.slow  # `feast apply` and importing Feast take most of a minute on 2 cores


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """Copies of the spec folder and the feature repository, each with the user's one new file."""
    root = tmp_path_factory.mktemp("checkout")
    specs, repo = root / "specs", root / "feature_repo"
    shutil.copytree(DEFAULT_SPEC_DIR, specs)
    shutil.copytree(store.FEATURE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    add_own_model(specs, repo)
    return specs, repo


def test_the_spec_folder_lists_the_added_model_and_demo_tests_still_read_the_demos(checkout, caplog):
    specs, _ = checkout
    assert [s.name for s in load_specs(specs)] == sorted([*DEMO_MODELS, OWN_MODEL])
    assert [s.name for s in load_specs(specs, names=DEMO_MODELS)] == list(DEMO_MODELS)
    with caplog.at_level(logging.WARNING, logger="monitoring.spec_metrics"):
        assert [s.name for s in loadable_specs(specs)] == sorted([*DEMO_MODELS, OWN_MODEL])
    assert not caplog.text


def test_the_pipeline_tests_fast_specs_are_the_demos_only(checkout, tmp_path, monkeypatch):
    monkeypatch.setattr(fast_specs_module, "DEFAULT_SPEC_DIR", checkout[0])
    fast_specs_module.fast_specs(tmp_path / "fast")
    assert sorted(p.stem for p in (tmp_path / "fast").glob("*.yaml")) == sorted(DEMO_CLASSIFIERS)


def test_feast_over_the_checkout_with_the_demo_data_only_and_then_the_users_tables(
    checkout, tmp_path, monkeypatch
):
    specs, repo = checkout
    home = _home_over(repo, tmp_path / "home", monkeypatch)
    config = GeneratorConfig(customers=30)
    write_tables(config, generate(config), home / "data")

    # What the demo's tests stand up: the user's view is applied, its table is absent, nothing fails.
    store.bootstrap(views=DEMO_FEATURE_VIEWS)
    feast = store.open_store()
    assert OWN_SERVICE in {service.name for service in feast.list_feature_services()}
    session = pd.read_parquet(home / "data" / "session_stats.parquet").iloc[-1]
    online = feast.get_online_features(
        features=["session_stats_fv:message_count"], entity_rows=[{"session_id": int(session.session_id)}]
    ).to_dict()
    assert online["message_count"] == [int(session.message_count)]

    # The user's table arrives: their model's training set comes from their view, over their spec's window.
    write_own_tables(home / "data")
    (spec,) = load_specs(specs, names=[OWN_MODEL])
    window = resolve_window(spec, now=spec_anchor(spec))
    frame, lineage = load_training_set(spec, *window, store=feast)
    assert lineage["rows"] == 569  # every label row: no demo window cuts the user's data
    assert lineage["input_columns"] == FEATURES
    assert frame[FEATURES].notna().all().all()


@pytest.fixture
def own_home(checkout, tmp_path, monkeypatch):
    """A home with only the user's tables (no demo data, no demo manifest) over the checkout's repo."""
    _, repo = checkout
    home = _home_over(repo, tmp_path / "home", monkeypatch)
    return home, write_own_tables(home / "data")


def _home_over(repo, home, monkeypatch):
    """`home` as MLOPS_HOME (no FEATURE_DATA_URI), with feature_repo.store pointed at the checkout's repo."""
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.delenv("FEATURE_DATA_URI", raising=False)
    monkeypatch.setattr(store, "FEATURE_REPO", repo)
    monkeypatch.setattr(store, "LOCAL_CONFIG", repo / "feature_store.yaml")
    return home


def test_features_materialize_what_exists_over_its_own_range_without_demo_data(own_home, capsys):
    _, patients = own_home
    store.bootstrap()
    printed = capsys.readouterr()
    assert "feast materialize: patient_measurements_fv 2027-01-04 .. 2027-03-04" in printed.out
    for view in DEMO_FEATURE_VIEWS:  # the demo's tables are absent: said, skipped, nothing fails
        assert f"warning: feast materialize: {view}: no source at" in printed.err
    assert "entities of" not in printed.err  # every patient has an online value
    newest = patients.iloc[-1]
    online = (
        store.open_store()
        .get_online_features(
            features=[f"patient_measurements_fv:{name}" for name in FEATURES],
            entity_rows=[{"patient_id": int(newest.patient_id)}],
        )
        .to_dict()
    )
    assert [online[name][0] for name in FEATURES] == pytest.approx(list(newest[FEATURES]))


@pytest.mark.parametrize("slice_rows", [store.CHECK_BATCH_ROWS, 7])  # one query, and many slices
def test_a_source_row_added_after_materializing_is_counted_as_missing_online(
    own_home, monkeypatch, slice_rows
):
    monkeypatch.setattr(store, "CHECK_BATCH_ROWS", slice_rows)
    home, patients = own_home
    store.bootstrap()
    late = patients.tail(3).assign(patient_id=lambda t: t.patient_id + 10_000)
    pd.concat([patients, late]).to_parquet(home / "data" / "patients.parquet", index=False)
    feast = store.open_store()
    view = feast.get_feature_view("patient_measurements_fv")
    assert store.missing_online(feast, view) == (3, len(patients) + 3)


def test_editing_the_users_view_module_is_a_change_apply_sees(own_home, checkout):
    _, repo = checkout
    assert repo / "patients.py" in store.repo_files()
    assert store.apply() is True
    assert store.apply() is False
    module = repo / "patients.py"
    original = module.read_text()
    try:
        module.write_text(original.replace("ttl=timedelta(days=30)", "ttl=timedelta(days=31)"))
        assert store.apply() is True
    finally:
        module.write_text(original)
