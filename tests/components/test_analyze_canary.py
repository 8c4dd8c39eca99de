"""analyze_canary's decisions that need no serving stack: no canary to analyse, the request count that
reaches the spec's minimum, and the cluster path (the spec's window, then Prometheus over HTTP)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from components.analyze_canary.core import (
    GRPC_SHARE,
    PROMETHEUS_URL_ENV,
    analyze_canary,
    analyze_in_cluster,
    default_requests,
)
from components.common.model_spec import load_specs
from inference.canary.evidence import prometheus_queries, score_query

RECORDED = Path(__file__).resolve().parents[1] / "inference" / "data" / "prometheus_canary_query.json"


@pytest.fixture
def spec():
    (spec,) = load_specs(names=["conversion-xgboost"])
    return spec


def test_no_canary_is_passed_on_without_touching_anything(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    lines: list[str] = []
    assert analyze_canary("no-such-model", "1", "no-canary", "local", say=lines.append) == "no-canary"
    assert lines == ["[analyze_canary] no-such-model: no canary to analyse"]
    assert list(tmp_path.iterdir()) == []  # no MLflow store, no runtime looked for


def test_default_requests_reach_min_requests_on_the_share_the_router_counts(spec) -> None:
    canary_share = spec.canary.traffic_percent / 100
    for counted in (1.0, 1.0 - GRPC_SHARE):
        requests = default_requests(spec, counted)
        assert requests * counted * canary_share >= 1.2 * spec.canary.min_requests
    assert default_requests(spec, 1.0 - GRPC_SHARE) > default_requests(spec, 1.0)


class _RecordedPrometheus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)["query"][0]
        window = self.server.window  # type: ignore[attr-defined]
        queries = prometheus_queries("conversion-xgboost", window)
        queries["scores"] = score_query("conversion-xgboost", window)
        key = next(k for k, q in queries.items() if q == query)
        recorded = json.loads(RECORDED.read_text())
        # The recorded answers predate the score histogram: an empty vector, i.e. no scores in the window.
        empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
        body = json.dumps(recorded.get(key, empty)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_cluster_analysis_waits_the_window_then_decides_on_prometheus(spec, monkeypatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordedPrometheus)
    server.window = spec.canary.analysis_window_s  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(PROMETHEUS_URL_ENV, f"http://127.0.0.1:{server.server_address[1]}")
    waited: list[float] = []
    try:
        decision = analyze_in_cluster(spec, "1", "2", sleep=waited.append)
    finally:
        server.shutdown()
    assert waited == [spec.canary.analysis_window_s]
    assert decision.verdict == "rollback"
    assert decision.reasons == ["canary error rate 0.020 > 0.01 (4 of 201)"]
    assert decision.evidence["source"] == "prometheus" and decision.evidence["prediction_shift"] is None
