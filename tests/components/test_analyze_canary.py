"""analyze_canary's decisions that need no serving stack: no canary to analyse, the request count that
reaches the spec's minimum, and the cluster path (readiness in either KServe mode, the spec's window, then
Prometheus over HTTP)."""

from __future__ import annotations

import pytest

from core.settings import variable
from inference.canary.analyze import (
    MIN_REQUESTS,
    analyze_canary,
    analyze_in_cluster,
    default_requests,
)
from tests.helpers.kserve_status import FIXTURE, STANDARD_FIXTURE, recorded_isvc
from tests.helpers.recorded_prometheus import recorded_prometheus
from tests.helpers.specs import fixture_spec


@pytest.fixture
def spec():
    return fixture_spec("conversion-xgboost")


def test_no_canary_is_passed_on_without_touching_anything(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    lines: list[str] = []
    assert analyze_canary("no-such-model", "1", "no-canary", "local", say=lines.append) == "no-canary"
    assert lines == ["[analyze_canary] no-such-model: no canary to analyse"]
    assert list(tmp_path.iterdir()) == []  # no MLflow store, no runtime looked for


def test_default_requests_reach_min_requests_on_the_canary_share(spec) -> None:
    requests = default_requests(spec)
    assert requests * spec.canary.traffic_percent / 100 >= 1.2 * spec.canary.min_requests
    assert requests >= MIN_REQUESTS


@pytest.mark.parametrize("fixture", [FIXTURE, STANDARD_FIXTURE], ids=["Knative", "Standard"])
def test_cluster_analysis_waits_for_ready_then_the_window_then_decides_on_prometheus(
    spec, monkeypatch, fixture
) -> None:
    waited: list[float] = []
    get, calls = recorded_isvc("becomes_ready", fixture)
    with recorded_prometheus("conversion-xgboost", spec.canary.analysis_window_s) as (url, _):
        monkeypatch.setenv(variable("prometheus_url"), url)
        decision = analyze_in_cluster(spec, "1", "2", read_isvc=get, sleep=waited.append)
    # two polls until the canary revision is Ready, then the whole window counted from that moment
    assert len(calls) == 3 and waited[-1] == spec.canary.analysis_window_s and len(waited) == 3
    assert decision.verdict == "rollback"
    assert decision.reasons == ["canary error rate 0.020 > 0.01 (4 of 201)"]
    assert decision.evidence["source"] == "prometheus" and decision.evidence["prediction_shift"] is None


@pytest.mark.parametrize(
    ("name", "why"), [("fails", "RevisionFailed"), ("never_ready", "not Ready within 900 s")]
)
def test_a_canary_that_never_serves_is_rolled_back_unjudged(spec, name, why) -> None:
    get, _ = recorded_isvc(name)
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    decision = analyze_in_cluster(spec, "1", "2", read_isvc=get, sleep=sleep, clock=lambda: clock[0])
    assert decision.verdict == "rollback" and len(decision.reasons) == 1
    assert decision.reasons[0].startswith("canary v2 was never judged: ") and why in decision.reasons[0]
    assert decision.evidence["source"] == "isvc-status"
    assert decision.evidence["canary_revision"] == "conversion-xgboost-predictor-00002"
    assert clock[0] <= spec.canary.ready_timeout_s  # the window was never waited
