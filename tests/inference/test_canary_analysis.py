"""Canary analysis units: the decision table, PSI and quantile math, PromQL and Prometheus' answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from inference.canary.analysis import CanaryEvidence, RoleEvidence, decide, histogram_quantile, psi
from inference.canary.evidence import (
    EvidenceError,
    evidence_from_prometheus,
    parse_prometheus_vector,
    prometheus_queries,
)
from tests.helpers.ranking import ranker_spec
from tests.helpers.recorded_prometheus import RECORDED, recorded_prometheus
from tests.helpers.specs import fixture_spec

RNG = np.random.default_rng(0)
SAME = RNG.beta(2, 5, 400)
VERSIONS = {"stable": "1", "canary": "2"}


@pytest.fixture(scope="module")
def spec():
    # The fixture conversion-xgboost: min_requests 200, error rate 0.01, p95 ratio 1.5, PSI 0.2.
    return fixture_spec("conversion-xgboost")


def evidence(requests=300, errors=0, p95=0.010, scores=None) -> CanaryEvidence:
    stable = RoleEvidence(1200, 0, 0.010, tuple(SAME))
    canary = RoleEvidence(requests, errors, p95, tuple(RNG.beta(2, 5, 400) if scores is None else scores))
    return CanaryEvidence(stable, canary, "test")


@pytest.mark.parametrize(
    ("case", "promote", "inconclusive", "reason"),
    [
        (evidence(), True, False, None),
        (evidence(errors=6), False, False, "canary error rate 0.020 > 0.01 (6 of 300)"),
        (evidence(p95=0.016), False, False, "canary p95 latency 1.60x stable > 1.5x"),
        (evidence(scores=RNG.beta(5, 2, 400)), False, False, "prediction shift PSI"),
        (evidence(requests=150, errors=150), False, True, "not enough canary traffic: 150 < 200"),
    ],
    ids=["promote", "errors", "latency", "shift", "too-little-traffic"],
)
def test_decision_table(spec, case, promote, inconclusive, reason) -> None:
    decision = decide(spec, case)
    assert (decision.promote, decision.inconclusive) == (promote, inconclusive)
    if reason is None:
        assert decision.reasons == [] and decision.verdict == "promote"
    else:
        assert len(decision.reasons) == 1 and decision.reasons[0].startswith(reason)
    assert decision.evidence["canary"]["requests"] == case.canary.requests
    json.dumps(decision.evidence)  # recorded as an MLflow artifact


def test_a_large_ratio_of_small_latencies_is_noise_not_a_regression(spec) -> None:
    assert spec.canary.success.min_p95_latency_increase_ms == 5
    fast = RoleEvidence(1200, 0, 0.002, tuple(SAME))
    twice_as_slow = RoleEvidence(300, 0, 0.004, tuple(SAME))
    decision = decide(spec, CanaryEvidence(fast, twice_as_slow, "test"))
    assert decision.promote and decision.evidence["p95_latency_ratio"] == pytest.approx(2.0)
    assert decision.evidence["p95_latency_increase_ms"] == pytest.approx(2.0)
    much_slower = RoleEvidence(300, 0, 0.0071, tuple(SAME))
    (reason,) = decide(spec, CanaryEvidence(fast, much_slower, "test")).reasons
    assert reason == "canary p95 latency 3.55x stable > 1.5x (+5.1 ms)"


def test_every_failed_criterion_is_a_reason_and_missing_scores_skip_the_shift(spec) -> None:
    bad = evidence(errors=30, p95=0.05, scores=RNG.beta(5, 2, 400))
    assert len(decide(spec, bad).reasons) == 3
    unscored = CanaryEvidence(RoleEvidence(1000, 0, 0.01), RoleEvidence(300, 0, 0.011), "prometheus")
    decision = decide(spec, unscored)
    assert decision.promote and decision.evidence["prediction_shift"] is None


def test_a_rankers_canary_is_not_judged_on_the_scale_of_its_raw_scores() -> None:
    ranker = ranker_spec()
    assert ranker.canary.success.max_prediction_shift is None
    # a retrained LambdaMART's scores offset by a constant: the same ranking, a huge PSI
    offset = evidence(scores=tuple(np.asarray(SAME) + 3.0))
    decision = decide(ranker, offset)
    assert decision.promote and decision.reasons == [] and decision.evidence["prediction_shift"] is None
    slower = decide(ranker, evidence(errors=6, p95=0.016, scores=tuple(np.asarray(SAME) + 3.0)))
    assert len(slower.reasons) == 2  # errors and latency still judge it


def test_psi_on_known_distributions() -> None:
    reference = np.linspace(0, 1, 1000, endpoint=False)
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    # All of `actual` in the top decile: PSI = 0.9*(1e-4-0.1)*ln(1e-4/0.1)... summed by hand below.
    top = np.full(100, 0.95)
    expected = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1.0 - 0.1) * math.log(1.0 / 0.1)
    assert psi(reference, top) == pytest.approx(expected, rel=1e-9)
    # Half the mass moved from the lower to the upper half: each decile 0.1 -> 0.05 or 0.15.
    shifted = np.concatenate([reference[:500:2], reference[500:], reference[500:][::2]])
    half = 5 * (0.05 - 0.1) * math.log(0.5) + 5 * (0.15 - 0.1) * math.log(1.5)
    assert psi(reference, shifted) == pytest.approx(half, rel=1e-9)
    assert psi(np.zeros(50), np.zeros(20)) == 0.0  # a constant score: one bin, no shift
    with pytest.raises(ValueError, match="at least one score"):
        psi([], [0.5])


def test_histogram_quantile_matches_prometheus() -> None:
    buckets = [(0.005, 50.0), (0.01, 90.0), (0.025, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.01 + 0.015 * 5 / 10)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.005)
    assert histogram_quantile(0.2, buckets) == pytest.approx(0.002)  # first bucket starts at 0
    assert histogram_quantile(0.95, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1  # rank in +Inf
    assert histogram_quantile(0.95, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_promql_selects_the_model_and_5xx_over_the_window() -> None:
    queries = prometheus_queries('a"b', 600)
    selector = 'namespace="mlops",model="a\\"b"'
    assert (
        queries["requests"]
        == f"sum by (version) (increase(mlops:inference_requests_total{{{selector}}}[600s]))"
    )
    assert queries["errors"] == (
        f"sum by (version) (increase(mlops:inference_server_errors_total{{{selector}}}[600s]))"
    )
    assert queries["p95_latency_s"] == (
        f"max by (version) (avg_over_time(mlops:inference_request_duration_seconds:p95{{{selector}}}[600s]))"
    )


def test_recorded_prometheus_answers_parse() -> None:
    recorded = json.loads(RECORDED.read_text())
    assert parse_prometheus_vector(recorded["requests"]) == {"1": 803.2, "2": 201.0}
    assert parse_prometheus_vector(recorded["p95_latency_s"]) == {"1": 0.0042}  # NaN: no traffic
    with pytest.raises(EvidenceError, match="errors: bad_data: parse error"):
        parse_prometheus_vector(
            {"status": "error", "errorType": "bad_data", "error": "parse error"}, "errors"
        )
    with pytest.raises(EvidenceError, match="expected a vector"):
        parse_prometheus_vector({"status": "success", "data": {"resultType": "matrix", "result": []}})


def test_evidence_from_prometheus_over_http(spec) -> None:
    with recorded_prometheus("conversion-xgboost", 600) as (url, queries):
        found = evidence_from_prometheus(url, spec.name, 600, VERSIONS, scores=False)
    assert len(queries) == 3
    assert (found.canary.requests, found.canary.errors, found.canary.p95_latency_s) == (201.0, 4.0, None)
    assert found.canary.error_rate == pytest.approx(4 / 201)
    assert (found.stable.requests, found.stable.errors, found.stable.p95_latency_s) == (803.2, 0.0, 0.0042)
    assert decide(spec, found).reasons == ["canary error rate 0.020 > 0.01 (4 of 201)"]
    with pytest.raises(EvidenceError, match="requests query failed"):
        evidence_from_prometheus(
            "http://127.0.0.1:9", spec.name, 600, {"stable": "1", "canary": "2"}, timeout_s=1
        )
