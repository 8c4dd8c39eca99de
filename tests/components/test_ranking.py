"""A ranker through load_features, train, evaluate and the gate, on a real Feast store over the demo's offers.

The store is stood up once (`feast apply` on the demo scale' demo data); the expected numbers are recomputed
independently: NDCG with scikit-learn per query, popularity from the raw click log, the served artifact's
scores with the Treelite that Triton's FIL backend links.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import treelite
from sklearn.metrics import ndcg_score

from components.evaluate.step import evaluate
from components.gate.step import compare_with_champion, decide
from components.load_features.step import load_training_set, resolve_window, spec_anchor
from components.train.step import train
from components.validate_data.validation import validate
from core.bundle import load_predictor
from core.frameworks.base import label_codes
from core.frameworks.xgboost_model import export_triton_artifact
from feature_repo import store as feature_store
from inference.triton_repository import export_repository
from monitoring.detectors.fit import input_columns as monitored_columns
from tests.helpers.demo_home import demo_home
from tests.helpers.ranking import ranker_spec

pytestmark = pytest.mark.slow  # `feast apply`, the historical join and a fit: most of a minute on 2 cores

CUSTOMERS = 1000  # the demo scale: about 760 test sessions


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with demo_home(tmp_path_factory.mktemp("mlops_home"), customers=CUSTOMERS) as home:
        yield home


@pytest.fixture(scope="module")
def spec():
    return ranker_spec()  # with its search: the README's margin over popularity is this spec's


@pytest.fixture(scope="module")
def training_set(home, spec):
    window = resolve_window(spec, None, None, spec_anchor(spec, home / "data"))
    frame, _ = load_training_set(spec, *window, store=feature_store.open_store(), data_dir=home / "data")
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spec, training_set):
    return train(spec, training_set, tmp_path_factory.mktemp("ranker"), progress=lambda _: None)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, spec, training_set, trained):
    reference = training_set[training_set["event_timestamp"] < trained.test["event_timestamp"].min()]
    out = tmp_path_factory.mktemp("evaluation")
    return evaluate(load_predictor(trained.bundle_dir), trained.test, reference, spec, out), reference


def test_the_training_set_carries_each_impressions_query_and_position_but_never_as_inputs(
    home, training_set, trained
):
    impressions = pd.read_parquet(home / "data" / "offer_impressions.parquet")
    assert len(training_set) == len(impressions)  # the window covers the demo period
    assert {"session_id", "position", "relevance", "offer_category", "category_click_rate_30d"} <= set(
        training_set.columns
    )
    inputs = load_predictor(trained.bundle_dir).info.inputs
    assert not {"session_id", "customer_id", "offer_id", "position", "relevance"} & set(inputs)
    # A query never straddles the time split: each session's slate is whole in one split.
    sessions = [
        set(part["session_id"])
        for part in (trained.test, training_set.iloc[: len(training_set) - len(trained.test)])
    ]
    assert not sessions[0] & sessions[1]


def test_metrics_are_scikit_learns_ndcg_per_query_of_the_models_scores(spec, trained, evaluation):
    result, _ = evaluation
    test = trained.test
    scores = load_predictor(trained.bundle_dir).predict_proba(test)[:, 0]
    relevance = label_codes(spec, test)
    per_query = [
        ndcg_score([relevance[rows]], [scores[rows]], k=10)
        for rows in test.groupby("session_id").indices.values()
        if relevance[rows].sum() > 0
    ]
    assert result.metrics["queries"] == len(per_query)
    assert result.metrics["ndcg_at_10"] == pytest.approx(np.mean(per_query), abs=1e-6)
    assert result.metrics["recall_at_10"] == 1.0  # slates of 8: a cut-off past the list finds everything
    saved = json.loads(result.metrics_path.read_text())
    assert saved["metrics"]["ndcg_at_10"] == pytest.approx(result.metrics["ndcg_at_10"])
    assert (result.metrics_path.parent / saved["plots"]["ndcg_by_k"]).stat().st_size > 0
    assert result.report_path is not None and result.report_path.stat().st_size > 0


def test_the_popularity_baseline_ranks_by_the_reference_click_log_and_the_ranker_beats_it(
    spec, trained, evaluation
):
    result, reference = evaluation
    test = trained.test
    rate = (reference["relevance"] > 0).groupby(reference["offer_id"]).mean()
    popular = test["offer_id"].map(rate).fillna(0.0).to_numpy()
    relevance = label_codes(spec, test)
    expected = np.mean(
        [
            ndcg_score([relevance[rows]], [popular[rows]], k=10)
            for rows in test.groupby("session_id").indices.values()
            if relevance[rows].sum() > 0
        ]
    )
    assert result.metrics["popularity_ndcg_at_10"] == pytest.approx(expected, abs=1e-6)
    # The demo's relevance follows customer x offer interest, which popularity cannot see (README: 0.06).
    assert result.metrics["ndcg_at_10"] > result.metrics["popularity_ndcg_at_10"] + 0.05
    assert result.metrics["mrr"] > result.metrics["popularity_mrr"]
    # Position-bias-aware: the demo world's 1/position examination, recovered from the logged slates.
    propensities = result.metrics["ips_propensities"]
    assert propensities["1"] == 1.0 and 0.35 < propensities["2"] < 0.7 and propensities["8"] < 0.25
    assert np.isfinite(result.metrics["ips_ndcg_at_10"])
    assert set(result.slices["plan_tier"]) == set(test["plan_tier"].astype("string"))


def test_the_gate_checks_the_margin_over_popularity_and_the_champion(spec, trained, evaluation):
    result, _ = evaluation
    metrics = json.loads(result.metrics_path.read_text())
    assert decide(spec, metrics, None).passed
    demanding = ranker_spec(evaluation={"baseline_margin": {"ndcg_at_10": 0.5}})
    decision = decide(demanding, metrics, None)
    assert not decision.passed
    (failure,) = decision.failures
    assert failure.startswith("ndcg_at_10 ") and "popularity" in failure and "< margin 0.50" in failure
    # The champion is scored on the candidate's test queries: itself is exactly as good.
    champion = compare_with_champion(spec, load_predictor(trained.bundle_dir), trained.test)
    assert champion["ndcg_at_10"] == pytest.approx(result.metrics["ndcg_at_10"])
    worse = {**metrics, "metrics": {**metrics["metrics"], "ndcg_at_10": champion["ndcg_at_10"] - 0.015}}
    assert [c["kind"] for c in decide(spec, worse, champion).checks if not c["passed"]] == ["champion"]


def test_the_served_fil_artifact_scores_like_the_bundle(tmp_path, trained):
    predictor = load_predictor(trained.bundle_dir)
    name = export_triton_artifact(trained.bundle_dir, predictor.info, tmp_path)
    model = treelite.frontend.load_xgboost_model(str(tmp_path / name))
    matrix = predictor.encoder.transform(trained.test)
    served = treelite.gtil.predict(model, matrix.astype(np.float32)).reshape(-1)
    assert np.max(np.abs(served - predictor.predict_proba(trained.test)[:, 0])) < 1e-5


def test_a_relevance_that_is_not_a_whole_number_is_a_one_line_error(tmp_path, spec, training_set):
    broken = training_set.assign(relevance=training_set["relevance"].astype("float64"))
    broken.loc[broken.index[3], "relevance"] = -1.0
    with pytest.raises(ValueError, match=r"relevance must be a whole number >= 0, got .-1.0. \(1 rows\)"):
        train(spec, broken, tmp_path, progress=lambda _: None)
    nothing = training_set.assign(relevance=0)
    with pytest.raises(ValueError, match="every row has relevance 0: nothing to rank"):
        train(spec, nothing, tmp_path, progress=lambda _: None)


def test_validate_data_takes_graded_relevance_and_refuses_a_negative_one(spec, training_set):
    report = validate(spec, training_set, reference=training_set.iloc[: len(training_set) // 2])
    assert report.passed, [f.one_line() for f in report.failures]
    broken = training_set.assign(relevance=training_set["relevance"].where(training_set.index != 5, -1))
    (failure,) = validate(spec, broken).failures
    assert failure.one_line().startswith("column 'relevance': check 'label_values' failed (1 value(s)")


def test_a_pytorch_pointwise_scorer_ranks_too_and_exports_to_onnx(tmp_path, spec, training_set, trained):
    mlp = ranker_spec(
        framework="pytorch",
        training={
            "search": None,
            "hyperparameters": {"hidden_units": 32, "batch_size": 512},
            "max_epochs": 8,
        },
        serving={"triton_backend": "onnxruntime"},
    )
    result = train(mlp, training_set, tmp_path / "mlp", progress=lambda _: None)
    predictor = load_predictor(result.bundle_dir)
    reference = training_set[training_set["event_timestamp"] < result.test["event_timestamp"].min()]
    metrics = evaluate(predictor, result.test, reference, mlp, tmp_path / "eval", with_report=False).metrics
    assert metrics["ndcg_at_10"] > metrics["popularity_ndcg_at_10"]
    # Served as ONNX behind the version's preprocessing: the export's parity check holds it to the bundle.
    export_repository(result.bundle_dir, mlp, tmp_path / "repo", result.test.head(200))
    assert (tmp_path / "repo").is_dir()


def test_the_drift_detector_watches_exactly_the_rankers_inputs(spec, training_set, trained):
    # A served request carries the model's inputs only: never the query id or the logged position.
    assert monitored_columns(spec, training_set) == load_predictor(trained.bundle_dir).info.inputs
