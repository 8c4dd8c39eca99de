"""Model quality from delayed outcomes through the drift service's real app on a real socket: the router's
own EventLogger posts request/response CloudEvents, outcomes (from the demo's conversion labels) come
later over `POST /v1/outcomes`, and the exported gauges must equal scikit-learn on the joined rows.

The drift detector is the deterministic double of tests/helpers/drift_doubles.py (alibi-detect lives in the
serving env; tests/serving_env/test_quality_real.py runs this over a real detector)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from inference.router.isvc import Target
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from monitoring.drift_service.app import create_app
from monitoring.drift_service.service import DriftService
from monitoring.quality.demo import outcome_records
from monitoring.quality.metrics import window_metrics
from monitoring.quality.store import PredictionStore
from tests.helpers.drift_doubles import FEATURES, MODEL
from tests.helpers.drift_events import quality_service
from tests.helpers.metrics_text import sample_value
from tests.helpers.servers import serving_in_thread
from tests.helpers.waiting import wait_for

# Servers in threads and waits on them: a hang fails here in minutes, not at the suite-wide timeout.
pytestmark = pytest.mark.timeout(120)
VERSION = "3"
FLOOR_ROC_AUC = 0.70  # the fixture conversion-xgboost spec's evaluation.floors


@pytest.fixture(scope="module")
def served() -> pd.DataFrame:
    """Demo sessions with a deterministic 'model' score that tracks the true label (AUC well above 0.7)."""
    tables = generate(GeneratorConfig(customers=40))
    sessions = tables["conversions"].head(240).reset_index(drop=True)
    rng = np.random.default_rng(0)
    p1 = np.clip(0.25 + 0.5 * sessions["converted"] + rng.normal(0, 0.2, len(sessions)), 0.01, 0.99)
    return sessions.assign(p1=p1, request_id=[f"req-{i}" for i in range(len(sessions))])


@contextmanager
def running(service: DriftService) -> Iterator[str]:
    try:
        with serving_in_thread(create_app(service, tick_s=0.05)) as base:
            yield base
    finally:
        service.quality.store.close()


def request_body(rows: pd.DataFrame, request_id: str) -> bytes:
    n = len(rows)
    inputs = [
        {"name": "plan_tier", "shape": [n], "datatype": "BYTES", "data": ["pro"] * n},
        {"name": "company_size", "shape": [n], "datatype": "INT64", "data": [10] * n},
        {"name": "lifetime_value", "shape": [n], "datatype": "FP64", "data": [1.0] * n},
        {"name": "sessions_7d", "shape": [n], "datatype": "INT64", "data": rows["session_id"].tolist()},
    ]
    return json.dumps({"id": request_id, "inputs": inputs}).encode()


def response_body(rows: pd.DataFrame, request_id: str) -> bytes:
    proba = np.column_stack([1 - rows["p1"], rows["p1"]]).astype(np.float32)
    output = {
        "name": "output__0",
        "shape": list(proba.shape),
        "datatype": "FP32",
        "data": proba.ravel().tolist(),
    }
    return json.dumps({"id": request_id, "model_name": MODEL, "outputs": [output]}).encode()


def log_served(base: str, served: pd.DataFrame) -> None:
    """The router's EventLogger posts one request/response pair per served row (as in `make serve`)."""
    logger = EventLogger(base + "/", RouterMetrics()).start()
    target = Target(MODEL, VERSION, "stable")
    for i in range(len(served)):
        row = served.iloc[[i]]
        rid = row["request_id"].iloc[0]
        logger.log_pair(target, request_body(row, rid), response_body(row, rid))
    logger.stop(timeout_s=30)


def post_outcomes(base: str, outcomes: list[dict]) -> httpx.Response:
    return httpx.post(f"{base}/v1/outcomes", json={"outcomes": outcomes}, timeout=30)


def gauge(base: str, name: str, **labels: str) -> float | None:
    return sample_value(httpx.get(f"{base}/metrics", timeout=10).text, name, **labels)


def test_quality_matches_sklearn_and_concept_drift_falls_below_the_floor(served, tmp_path):
    tables = generate(GeneratorConfig(customers=40))
    with running(quality_service(tmp_path)) as base:
        log_served(base, served)
        wait_for(
            lambda: (
                gauge(
                    base, "mlops_drift_events_received_total", model=MODEL, version=VERSION, kind="response"
                )
                == len(served)
            )
        )
        clean = served.iloc[:200]
        reply = post_outcomes(base, outcome_records(clean, tables["conversions"]))
        assert reply.status_code == 202
        assert reply.json() == {"outcomes": 200, "joined": 200, "rows_labeled": 200, "unmatched": {}}
        y, p1 = clean["converted"].to_numpy(), clean["p1"].astype(np.float32).to_numpy()
        proba = np.column_stack([1 - p1, p1])
        labels = {"model": MODEL, "version": VERSION}
        assert gauge(base, "mlops_model_quality_roc_auc", **labels) == pytest.approx(
            roc_auc_score(y, p1), abs=1e-9
        )
        assert gauge(base, "mlops_model_quality_accuracy", **labels) == pytest.approx(
            accuracy_score(y, p1 > 0.5)
        )
        assert gauge(base, "mlops_model_quality_log_loss", **labels) == pytest.approx(
            log_loss(y, proba), rel=1e-6
        )
        assert gauge(base, "mlops_model_quality_labeled_total", **labels) == 200
        # By the outcome's class: what a canary experiment tests (its success rate per version).
        for outcome, count in (("1", int(y.sum())), ("0", int(len(y) - y.sum()))):
            assert gauge(base, "mlops_model_outcomes_total", **labels, outcome=outcome) == count
        assert 0 < y.sum() < len(y)
        assert gauge(base, "mlops_model_quality_floor", model=MODEL, metric="roc_auc") == FLOOR_ROC_AUC
        assert gauge(base, "mlops_model_quality_roc_auc", **labels) > FLOOR_ROC_AUC

    # Concept drift: the same inputs, half the labels flipped; a fresh service on a fresh store.
    with running(quality_service(tmp_path / "drift")) as base:
        log_served(base, served)
        wait_for(
            lambda: (
                gauge(
                    base, "mlops_drift_events_received_total", model=MODEL, version=VERSION, kind="response"
                )
                == len(served)
            )
        )
        flipped = outcome_records(served, tables["conversions"], flip_fraction=0.5, seed=1)
        assert post_outcomes(base, flipped).json()["joined"] == len(served)
        auc = gauge(base, "mlops_model_quality_roc_auc", model=MODEL, version=VERSION)
        assert auc < FLOOR_ROC_AUC
        y = np.array([o["label"] for o in flipped])
        assert auc == pytest.approx(roc_auc_score(y, served["p1"].astype(np.float32)), abs=1e-9)


def test_unmatched_and_malformed_outcomes_are_counted_never_silent(served):
    with running(quality_service(None)) as base:
        log_served(base, served.iloc[:3])
        batched = served.iloc[3:6]
        logger = EventLogger(base + "/", RouterMetrics()).start()
        logger.log_pair(
            Target(MODEL, VERSION, "stable"), request_body(batched, "batch"), response_body(batched, "batch")
        )
        logger.stop(timeout_s=10)
        wait_for(
            lambda: (
                gauge(
                    base, "mlops_drift_events_received_total", model=MODEL, version=VERSION, kind="response"
                )
                == 4
            )
        )

        reply = post_outcomes(
            base,
            [
                {"request_id": "req-0", "label": 1},
                {"request_id": "req-0", "label": 0},  # second label of the same row
                {"request_id": "nobody", "label": 1},
                {"request_id": "req-1", "label": "maybe"},  # not a class of a binary model
                {"request_id": "batch", "label": 1},  # which of its 3 rows?
                {"request_id": "batch#2", "label": True},
                {"request_id": "batch#7", "label": 1},
            ],
        )
        assert reply.status_code == 202
        unmatched = {"duplicate": 1, "unknown_request": 2, "bad_label": 1, "ambiguous": 1}
        assert reply.json() == {"outcomes": 7, "joined": 2, "rows_labeled": 2, "unmatched": unmatched}
        for reason, count in unmatched.items():
            assert gauge(base, "mlops_model_quality_outcomes_unmatched_total", reason=reason) == count

        for body in (
            b"{",
            b'{"outcomes": []}',
            b'{"outcomes": [{"label": 1}]}',
            b'{"outcomes": [{"request_id": "req-2", "label": -1}]}',
        ):
            reply = httpx.post(f"{base}/v1/outcomes", content=body, timeout=10)
            assert reply.status_code == 400 and "\n" not in reply.json()["error"]
        assert gauge(base, "mlops_model_quality_outcomes_rejected_total", reason="bad_json") == 1
        assert gauge(base, "mlops_model_quality_outcomes_rejected_total", reason="bad_payload") == 3
        # A rejected body applies nothing: req-2 is still waiting for its label.
        assert post_outcomes(base, [{"request_id": "req-2", "label": 0}]).json()["joined"] == 1

        recent = httpx.get(f"{base}/v1/recent", params={"model": MODEL, "since": 0}, timeout=10).json()[
            "rows"
        ]
        assert len(recent) == 6
        batch_row = next(r for r in recent if r["request_id"] == "batch" and r["row"] == 2)
        assert batch_row["label"] == 1 and batch_row["features"]["sessions_7d"] == int(
            served["session_id"].iloc[5]
        )
        assert batch_row["proba"][1] == pytest.approx(served["p1"].iloc[5], abs=1e-6)


def test_a_restart_keeps_pending_predictions_and_the_labeled_count(served, tmp_path):
    with running(quality_service(tmp_path)) as base:
        log_served(base, served.iloc[:20])
        wait_for(
            lambda: (
                gauge(
                    base, "mlops_drift_events_received_total", model=MODEL, version=VERSION, kind="response"
                )
                == 20
            )
        )
        post_outcomes(
            base, [{"request_id": f"req-{i}", "label": int(served["converted"].iloc[i])} for i in range(10)]
        )
    with running(quality_service(tmp_path)) as base:
        assert gauge(base, "mlops_model_quality_labeled_total", model=MODEL, version=VERSION) == 10
        later = [{"request_id": f"req-{i}", "label": int(served["converted"].iloc[i])} for i in range(10, 20)]
        assert post_outcomes(base, later).json()["joined"] == 10
        assert gauge(base, "mlops_model_quality_labeled_total", model=MODEL, version=VERSION) == 20
        assert gauge(base, "mlops_model_quality_window_rows", model=MODEL, version=VERSION) == 20


def test_store_is_bounded_by_count_and_age(tmp_path):
    store = PredictionStore.in_folder(tmp_path, max_rows=5, max_age_s=100)
    for i in range(8):
        store.log_request(f"ce-{i}", f"r-{i}", MODEL, VERSION, [{"x": i}], now=1000.0 + i * 10)
    store.prune(now=1070.0)
    assert [r["request_id"] for r in store.recent(MODEL)] == ["r-7", "r-6", "r-5", "r-4", "r-3"]
    store.prune(now=1150.0)  # older than 100 s: r-3 (1030) and r-4 (1040); r-5 (1050) is at the limit
    assert [r["request_id"] for r in store.recent(MODEL)] == ["r-7", "r-6", "r-5"]


def test_window_metrics_multiclass_and_undefined_auc():
    proba = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]]
    scores = window_metrics([0, 1, 2, 1], proba)
    assert scores["accuracy"] == 0.75
    assert scores["roc_auc"] == pytest.approx(roc_auc_score([0, 1, 2, 1], proba, multi_class="ovr"))
    assert np.isnan(window_metrics([1, 1], [[0.2, 0.8], [0.4, 0.6]])["roc_auc"])  # one class only
    assert FEATURES  # the request body above sends the double's features


def poisoned_response(values: list[float], request_id: str) -> bytes:
    output = {"name": "output__0", "shape": [1, 2], "datatype": "FP32", "data": values}
    # json.dumps writes NaN and Infinity as the bare tokens a server's JSON encoder may send.
    return json.dumps({"id": request_id, "model_name": MODEL, "outputs": [output]}).encode()


POISONS = {
    "zeros": [0.0, 0.0],
    "nan": [float("nan"), 0.5],
    "above_one": [-0.5, 1.5],
    "inf": [0.0, float("inf")],
}


def test_poisoned_predictions_are_counted_never_stored_and_the_service_keeps_serving(served, tmp_path):
    """Responses that are no probability distribution reach the drift side (the event is acknowledged)
    but are never stored for quality; their outcomes find no prediction, every other outcome still joins,
    and a restart over the same state starts and scores."""
    target = Target(MODEL, VERSION, "stable")
    with running(quality_service(tmp_path)) as base:
        logger = EventLogger(base + "/", RouterMetrics()).start()
        for name, values in POISONS.items():
            row = served.iloc[[0]]
            logger.log_pair(target, request_body(row, name), poisoned_response(values, name))
        logger.stop(timeout_s=30)
        log_served(base, served.iloc[:20])
        wait_for(
            lambda: (
                gauge(
                    base, "mlops_drift_events_received_total", model=MODEL, version=VERSION, kind="response"
                )
                == 20 + len(POISONS)
            )
        )
        unlogged = "mlops_model_quality_predictions_unlogged_total"
        assert gauge(base, unlogged, model=MODEL, version=VERSION, reason="bad_response") == len(POISONS)
        reply = post_outcomes(base, [{"request_id": name, "label": 1} for name in POISONS])
        assert reply.status_code == 202 and reply.json()["unmatched"] == {"no_prediction": len(POISONS)}
        good = [{"request_id": f"req-{i}", "label": int(served["converted"].iloc[i])} for i in range(20)]
        assert post_outcomes(base, good).json()["joined"] == 20
        assert gauge(base, "mlops_model_quality_window_rows", model=MODEL, version=VERSION) == 20
    with running(quality_service(tmp_path)) as base:
        assert gauge(base, "mlops_model_quality_window_rows", model=MODEL, version=VERSION) == 20
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


def test_a_store_holding_poisoned_rows_from_before_still_starts_and_scores(served, tmp_path):
    """State written before responses were checked at the door (NaN, a zero row) is left out of the
    window instead of failing every outcome for the version and the next start."""
    store, now = PredictionStore.in_folder(tmp_path), time.time()
    rows = [
        (f"ok-{i}", [1 - served["p1"].iloc[i], served["p1"].iloc[i]], int(served["converted"].iloc[i]))
        for i in range(30)
    ]
    rows += [("nan", [float("nan"), float("nan")], 1), ("zeros", [0.0, 0.0], 0)]
    for request_id, proba, _ in rows:
        store.log_request(f"ce-{request_id}", request_id, MODEL, VERSION, [{"x": 1}], now=now)
        store.log_response(f"ce-{request_id}", request_id, MODEL, VERSION, [proba], now=now)
    store.set_labels([(f"ce-{request_id}", 0, label, now, None) for request_id, _, label in rows])
    store.close()
    with running(quality_service(tmp_path)) as base:
        assert gauge(base, "mlops_model_quality_window_rows", model=MODEL, version=VERSION) == 30
        auc = gauge(base, "mlops_model_quality_roc_auc", model=MODEL, version=VERSION)
        expected = roc_auc_score(served["converted"].iloc[:30], served["p1"].iloc[:30])
        assert auc == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", sorted(POISONS))
def test_a_poisoned_response_is_refused_in_one_line_naming_its_row(name):
    from monitoring.payloads.errors import EventError
    from monitoring.payloads.oip import response_probabilities

    good = {"name": "output__0", "shape": [2, 2], "datatype": "FP32", "data": [0.3, 0.7, 0.9, 0.1]}
    assert response_probabilities({"outputs": [good]}).shape == (2, 2)
    bad = {**good, "data": [0.3, 0.7, *POISONS[name]]}
    with pytest.raises(EventError) as refused:
        response_probabilities(json.loads(json.dumps({"outputs": [bad]})))
    message = str(refused.value)
    assert "'output__0' row 1: not class probabilities" in message and "(1 bad rows of 2)" in message
    assert "\n" not in message
