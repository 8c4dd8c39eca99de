"""A ranker's online quality from clicks, through the drift service's real app on a real socket: the router's
EventLogger posts each ranked request (one row per candidate) and its raw scores, the application posts a
click or no-click per shown row, and the exported NDCG@k, CTR@k and MRR must equal an independent
computation (scikit-learn's NDCG per request) on the same rows."""

from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from inference.router.isvc import Target
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from monitoring.drift_service.app import create_app
from monitoring.drift_service.metrics import DriftMetrics
from monitoring.drift_service.service import DriftService
from monitoring.quality.metrics import QualityMetrics
from monitoring.quality.ranking import ranking_window_metrics
from monitoring.quality.store import PredictionStore
from monitoring.quality.tracker import QualityTracker, labels_from_specs
from tests.helpers.drift_doubles import FEATURES, MeanBoundDetector
from tests.helpers.metrics_text import sample_value
from tests.helpers.ranking import RANKER_SPEC_PATH
from tests.helpers.servers import serving_in_thread
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.timeout(120)
RANKER = "offer-ranker-xgboost"
VERSION = "2"
REQUESTS, CANDIDATES = 40, 6


def test_window_metrics_by_hand() -> None:
    # Request a ranks (by score) rows clicked 0, 1, 0; request b ranks 1, 0; request c has no click.
    groups = ["a", "a", "a", "b", "b", "c", "c"]
    scores = [-0.5, -1.0, -2.0, 3.0, 1.0, 0.2, 0.1]
    labels = [0, 1, 0, 1, 0, 0, 0]
    found = ranking_window_metrics(groups, labels, scores, ks=(1, 3))
    assert found["mrr"] == pytest.approx((1 / 2 + 1) / 2)  # c holds no click: left out
    assert found["ctr_at_1"] == pytest.approx(1 / 3)  # top rows: a's (0), b's (1), c's (0)
    assert found["ctr_at_3"] == pytest.approx(2 / 7)
    nothing = ranking_window_metrics(["a", "a"], [0, 0], [0.3, 0.1], ks=(1,))
    assert math.isnan(nothing["ndcg_at_1"]) and math.isnan(nothing["mrr"]) and nothing["ctr_at_1"] == 0.0


def _request(rid: str, offers: list[int]) -> bytes:
    n = len(offers)
    inputs = [
        {"name": "plan_tier", "shape": [n], "datatype": "BYTES", "data": ["pro"] * n},
        {"name": "company_size", "shape": [n], "datatype": "INT64", "data": [10] * n},
        {"name": "lifetime_value", "shape": [n], "datatype": "FP64", "data": [1.0] * n},
        {"name": "sessions_7d", "shape": [n], "datatype": "INT64", "data": offers},
    ]
    assert [i["name"] for i in inputs] == FEATURES
    return json.dumps({"id": rid, "inputs": inputs}).encode()


def _response(rid: str, scores: np.ndarray) -> bytes:
    output = {"name": "output__0", "shape": [len(scores), 1], "datatype": "FP32", "data": scores.tolist()}
    return json.dumps({"id": rid, "model_name": RANKER, "outputs": [output]}).encode()


def _service(tmp_path) -> DriftService:
    metrics = DriftMetrics()
    tracker = QualityTracker(
        PredictionStore.in_folder(tmp_path),
        QualityMetrics(metrics.registry, metrics.version_label),
        labels_from_specs([RANKER], RANKER_SPEC_PATH.parent),
        window_size=1000,
    )
    detector = MeanBoundDetector(VERSION)
    detector.model = RANKER
    return DriftService({(RANKER, VERSION): detector}, metrics=metrics, buffer_size=1000, quality=tracker)


def test_clicks_give_ndcg_ctr_and_mrr_per_version_against_the_specs_floors(tmp_path) -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(0.0, 1.0, (REQUESTS, CANDIDATES)).astype(np.float32)  # raw: negative ones too
    # Clicks follow the score (a good ranker), with noise; a few requests get none.
    clicks = (scores + rng.normal(0.0, 1.0, scores.shape) > 1.2).astype(int)
    service = _service(tmp_path)
    try:
        with serving_in_thread(create_app(service, tick_s=0.05)) as base:
            logger = EventLogger(base + "/", RouterMetrics()).start()
            for i in range(REQUESTS):
                rid = f"rank-{i}"
                offers = list(range(1, CANDIDATES + 1))
                logger.log_pair(
                    Target(RANKER, VERSION, "stable"), _request(rid, offers), _response(rid, scores[i])
                )
            logger.stop(timeout_s=30)
            outcomes = [
                {"request_id": f"rank-{i}#{row}", "label": int(clicks[i, row])}
                for i in range(REQUESTS)
                for row in range(CANDIDATES)
            ]
            answer = httpx.post(f"{base}/v1/outcomes", json={"outcomes": outcomes}, timeout=30)
            assert answer.status_code == 202, answer.text
            assert answer.json()["rows_labeled"] == REQUESTS * CANDIDATES

            def gauge(name: str, **labels: str) -> float | None:
                return sample_value(httpx.get(f"{base}/metrics", timeout=10).text, name, **labels)

            wait_for(
                lambda: (
                    gauge("mlops_model_ranking_quality", model=RANKER, version=VERSION, metric="ndcg_at_10")
                    is not None
                ),
                "the ranker's window scored",
                30,
            )
            clicked = [i for i in range(REQUESTS) if clicks[i].any()]
            for k in (5, 10):
                expected = np.mean([ndcg_score([clicks[i]], [scores[i]], k=k) for i in clicked])
                found = gauge(
                    "mlops_model_ranking_quality", model=RANKER, version=VERSION, metric=f"ndcg_at_{k}"
                )
                assert found == pytest.approx(expected, abs=1e-5)
            top5 = np.argsort(-scores, axis=1)[:, :5]
            expected_ctr = np.take_along_axis(clicks, top5, axis=1).mean()
            ctr = gauge("mlops_model_ranking_quality", model=RANKER, version=VERSION, metric="ctr_at_5")
            assert ctr == pytest.approx(expected_ctr)
            first = [1 / (1 + np.flatnonzero(clicks[i][np.argsort(-scores[i])])[0]) for i in clicked]
            mrr = gauge("mlops_model_ranking_quality", model=RANKER, version=VERSION, metric="mrr")
            assert mrr == pytest.approx(np.mean(first), abs=1e-5)
            # The clicks are the ranker's business outcome, and its spec's floors are exported to alert on.
            assert (
                gauge("mlops_model_outcomes_total", model=RANKER, version=VERSION, outcome="1")
                == clicks.sum()
            )
            assert gauge("mlops_model_quality_floor", model=RANKER, metric="ndcg_at_10") == 0.5
            assert gauge("mlops_model_quality_predictions_unlogged_total", model=RANKER, version=VERSION,
                         reason="bad_response") == 0  # fmt: skip
    finally:
        service.quality.store.close()


def test_a_relevance_that_is_not_a_whole_number_is_a_bad_label(tmp_path) -> None:
    service = _service(tmp_path)
    try:
        with serving_in_thread(create_app(service, tick_s=0.05)) as base:
            logger = EventLogger(base + "/", RouterMetrics()).start()
            logger.log_pair(
                Target(RANKER, VERSION, "stable"), _request("r", [1, 2]), _response("r", np.ones(2))
            )
            logger.stop(timeout_s=30)
            answer = httpx.post(
                f"{base}/v1/outcomes",
                json={"outcomes": [{"request_id": "r#0", "label": "clicked"}]},
                timeout=30,
            )
            assert answer.status_code == 202 and answer.json()["unmatched"] == {"bad_label": 1}, answer.text
    finally:
        service.quality.store.close()
