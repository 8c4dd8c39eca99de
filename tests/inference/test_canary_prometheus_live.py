"""The cluster's canary analysis against a real Prometheus (the Debian binary) that scrapes a real Triton
the way the PodMonitor inference-predictors scrapes predictor pods, evaluates the committed PrometheusRule,
and scrapes the drift service's prediction-score histogram and joined-outcome counter; `analyze_in_cluster`
decides on what its PromQL answers, prediction shift and a canary experiment included.

Two models, each served by Triton as v1 (stable) and v2 (canary): for a few seconds each stable version
gets two requests for every one to its canary; conversion-xgboost's canary fails half of its executions
in the backend (the bad canary's `error` mode) and its scores (the real `DriftMetrics`) are shifted, the
other model's canary answers like its stable version.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pytest

from core.settings import variable
from core.spec.release import Experiment
from inference.canary.analysis import evidence_summary
from inference.canary.analyze import analyze_in_cluster
from inference.canary.bad_canary import sabotage
from inference.canary.evidence import evidence_from_prometheus, wait_for_recorded
from inference.deploy.annotations import NAMESPACE
from inference.local_prometheus import LocalPrometheus, triton_scrape_job
from inference.router.routing import stage_model_version
from inference.triton_local import TritonLocal
from monitoring.drift_service.metrics import DriftMetrics
from monitoring.quality.metrics import QualityMetrics
from tests.helpers.kserve_status import recorded_isvc
from tests.helpers.router_stack import N_FEATURES, export_local_model, fit_model, tensor
from tests.helpers.specs import fixture_spec

SHIFTED, STEADY = "conversion-xgboost", "steady-model"
FEED_S = 8.0
# At least this many ticks whatever the machine's speed: 240 joined outcomes per arm, above the experiment
# test's horizon (167 stable, 42 canary); a time-bound feed alone gave 160 on a slowed machine.
MIN_TICKS = 60
WINDOW_S = 60
SCORES = (0.12, 0.37, 0.55, 0.81)
SHIFTED_SCORES = (0.93, 0.97)
# Joined outcomes per tick, by (version, outcome class): a success rate of 0.25 for v1, 0.5 for v2.
OUTCOMES = {("1", "1"): 1, ("1", "0"): 3, ("2", "1"): 2, ("2", "0"): 2}
ROWS = np.random.default_rng(3).normal(size=(1, N_FEATURES)).astype(np.float32)

pytestmark = pytest.mark.slow


def _drift_server(drift: DriftMetrics) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = drift.exposition()
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _stage(repository, root) -> None:
    for seed, model in enumerate((SHIFTED, STEADY)):
        source = export_local_model(fit_model(seed), root / model / "local" / "demo")
        for version in ("1", "2"):
            staged = stage_model_version(source, repository, model, version)
            if model == SHIFTED and version == "2":
                sabotage(staged, "error")


def _feed(triton: TritonLocal, drift: DriftMetrics, quality: QualityMetrics, tick: int) -> None:
    for model in (SHIFTED, STEADY):
        for (version, outcome), rows in OUTCOMES.items():  # what the outcomes joined each tick
            quality.count_outcome(model, version, outcome, rows)
        for version, requests in (("1", 2), ("2", 1)):
            for _ in range(requests):
                url = f"{triton.http_url}/v2/models/{model}__v{version}/infer"
                httpx.post(url, json={"inputs": [tensor(ROWS)]}, timeout=10)
        for score in SCORES:
            drift.observe_scores(model, "1", [score])
        canary_scores = SHIFTED_SCORES if model == SHIFTED else SCORES[tick % 2 :: 2]
        for score in canary_scores:
            drift.observe_scores(model, "2", [score])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("live")
    _stage(root / "repo", root)
    drift = DriftMetrics()
    quality = QualityMetrics(drift.registry, drift.version_label)  # as the drift service's __main__
    for model in (SHIFTED, STEADY):  # as the drift service does for each detector it loads: labelled
        for version in ("1", "2"):  # by version only then (others share version="other")
            drift.register_detector(model, version)
    server = _drift_server(drift)
    drift_job = {
        "job_name": "drift-detector",
        "static_configs": [
            {"targets": [f"127.0.0.1:{server.server_address[1]}"], "labels": {"namespace": NAMESPACE}}
        ],
    }
    prometheus = LocalPrometheus(root / "prometheus", root / "prometheus.log")
    try:
        with TritonLocal(log_path=root / "triton.log").start(root / "repo") as triton:
            url = prometheus.start([triton_scrape_job(triton.metrics_address), drift_job])
            for model in (SHIFTED, STEADY):  # the baseline sample before the traffic
                wait_for_recorded(url, model, ["1", "2"], after=time.time())
            started = time.monotonic()
            for tick in itertools.count():
                _feed(triton, drift, quality, tick)
                if time.monotonic() - started >= FEED_S and tick + 1 >= MIN_TICKS:
                    break
            fed_at = time.time()
            for model in (SHIFTED, STEADY):
                wait_for_recorded(url, model, ["1", "2"], after=fed_at)
            yield url
    finally:
        prometheus.stop()
        server.shutdown()


def test_requests_errors_and_latency_per_version_come_from_triton_through_prometheus(prometheus):
    evidence = evidence_from_prometheus(prometheus, SHIFTED, WINDOW_S, {"stable": "1", "canary": "2"})
    assert evidence.source == "prometheus"
    # increase() extrapolates inside the window: ratios are exact, absolute counts are not.
    assert evidence.stable.requests / evidence.canary.requests == pytest.approx(2.0, rel=0.15)
    assert evidence.canary.error_rate == pytest.approx(0.5, abs=0.25)  # a seeded draw per execution
    assert evidence.stable.errors == 0
    steady = evidence_from_prometheus(prometheus, STEADY, WINDOW_S, {"stable": "1", "canary": "2"})
    assert steady.canary.errors == 0 and steady.canary.requests > 0
    for found in (evidence.stable, evidence.canary, steady.stable, steady.canary):
        assert 0 < found.p95_latency_s < 1.0  # Triton's own p95, in seconds


def test_prediction_shift_comes_from_the_score_histograms(prometheus):
    steady = evidence_from_prometheus(prometheus, STEADY, WINDOW_S, {"stable": "1", "canary": "2"})
    shifted = evidence_from_prometheus(prometheus, SHIFTED, WINDOW_S, {"stable": "1", "canary": "2"})
    assert len(steady.stable.score_counts) == 21  # 20 bins of [0, 1] and +Inf
    assert evidence_summary(steady)["prediction_shift"] < 0.05
    assert evidence_summary(shifted)["prediction_shift"] > 2.0


def test_cluster_analysis_rolls_back_the_failing_shifted_canary(prometheus, monkeypatch):
    spec = fixture_spec(SHIFTED)
    # The spec's 10-minute window and 200 requests, shrunk to what the feed above sends.
    canary = spec.canary.model_copy(update={"analysis_window_s": WINDOW_S, "min_requests": 20})
    spec = spec.model_copy(update={"canary": canary})
    monkeypatch.setenv(variable("prometheus_url"), prometheus)
    ready, _ = recorded_isvc("becomes_ready")
    decision = analyze_in_cluster(spec, "1", "2", read_isvc=ready, sleep=lambda _: None)
    assert decision.verdict == "rollback"
    assert any(reason.startswith("canary error rate") for reason in decision.reasons)
    assert any(reason.startswith("prediction shift PSI") for reason in decision.reasons)


def test_a_canary_experiment_reads_the_joined_outcomes_per_version(prometheus, monkeypatch):
    evidence = evidence_from_prometheus(
        prometheus, STEADY, WINDOW_S, {"stable": "1", "canary": "2"}, success_class="1"
    )
    assert evidence.stable.successes / evidence.stable.outcomes == pytest.approx(0.25, rel=0.1)
    assert evidence.canary.successes / evidence.canary.outcomes == pytest.approx(0.5, rel=0.1)
    spec = fixture_spec(SHIFTED)
    experiment = {"success_class": "1", "baseline_rate": 0.25, "minimum_detectable_effect": 0.2}
    # Latency is not what this test judges: two Triton versions on shared cores differ by noise.
    success = spec.canary.success.model_copy(update={"max_p95_latency_ratio": 100.0})
    canary = spec.canary.model_copy(
        update={
            "analysis_window_s": WINDOW_S,
            "min_requests": 20,
            "success": success,
            "experiment": Experiment(**experiment),
        }
    )
    spec = spec.model_copy(update={"name": STEADY, "canary": canary})
    monkeypatch.setenv(variable("prometheus_url"), prometheus)
    ready, _ = recorded_isvc("becomes_ready")
    decision = analyze_in_cluster(spec, "1", "2", read_isvc=ready, sleep=lambda _: None)
    assert decision.evidence["experiment"]["status"] == "canary_better", decision.reasons
    assert decision.verdict == "promote", decision.reasons
