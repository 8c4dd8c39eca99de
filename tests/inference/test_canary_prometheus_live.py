"""The cluster's canary analysis against a real Prometheus (the Debian binary): it scrapes the router's
request metrics and the drift service's prediction-score histogram, and `analyze_in_cluster` decides on
what its PromQL answers, prediction shift included.

The exporters are the real metric classes (`RouterMetrics`, `DriftMetrics`) behind one loopback /metrics
endpoint, fed for a few seconds with a stable version and a canary that fails a third of its requests and
answers with shifted scores; a second model's canary answers like its stable version.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.ports import free_port
from core.settings import variable
from inference.canary.analysis import evidence_summary
from inference.canary.analyze import analyze_in_cluster
from inference.canary.evidence import evidence_from_prometheus
from inference.router.metrics import RouterMetrics
from monitoring.drift_service.metrics import DriftMetrics
from monitoring.local_stack_runner import PROMETHEUS_BIN
from tests.helpers.environment import require_file
from tests.helpers.kserve_status import recorded_isvc
from tests.helpers.specs import fixture_spec
from tests.helpers.waiting import wait_for, wait_until_serving

SHIFTED, STEADY = "conversion-xgboost", "steady-model"
FEED_S = 8.0
SCRAPE_S = 1.0
WINDOW_S = 60
SCORES = (0.12, 0.37, 0.55, 0.81)
SHIFTED_SCORES = (0.93, 0.97)

pytestmark = pytest.mark.slow


class _Exporters:
    def __init__(self) -> None:
        self.router, self.drift = RouterMetrics(), DriftMetrics()
        self.lock = threading.Lock()

    def exposition(self) -> bytes:
        with self.lock:
            return self.router.exposition() + self.drift.exposition()

    def feed_once(self, tick: int) -> None:
        with self.lock:
            for model in (SHIFTED, STEADY):
                for score in SCORES:
                    self.router.observe(model, "1", "stable", 200, 0.010)
                    self.drift.observe_scores(model, "1", [score])
                canary_scores = SHIFTED_SCORES if model == SHIFTED else SCORES[tick % 2 :: 2]
                for score in canary_scores:
                    failed = model == SHIFTED and tick % 3 == 0
                    self.router.observe(model, "2", "canary", 503 if failed else 200, 0.030)
                    self.drift.observe_scores(model, "2", [score])


def _metrics_server(exporters: _Exporters) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exporters.exposition()
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prometheus")
    exporters = _Exporters()
    server = _metrics_server(exporters)
    config = {
        "global": {"scrape_interval": f"{SCRAPE_S:g}s", "evaluation_interval": f"{SCRAPE_S:g}s"},
        "scrape_configs": [
            {"job_name": "loop", "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}]}
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            require_file(Path(PROMETHEUS_BIN), "Prometheus", "make deb-packages"),
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(home / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/-/ready", process, 60.0)
        for tick in itertools.count():
            exporters.feed_once(tick)
            if tick * 0.25 >= FEED_S:
                break
            time.sleep(0.25)
        fed_at = time.time()
        # Two scrapes of the final counts: the newest scrape started more than one interval after the feed.
        wait_for(lambda: _last_scrape(url) > fed_at + SCRAPE_S, "two scrapes after the last feed", 60, 0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        server.shutdown()
        shutil.rmtree(home, ignore_errors=True)


def _last_scrape(url: str) -> float:
    """When Prometheus last scraped the exporters (its own sample timestamp, Unix seconds), or 0."""
    query = urllib.parse.urlencode({"query": 'timestamp(up{job="loop"})'})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as answer:
        result = json.load(answer)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_requests_errors_and_latency_per_role_come_from_prometheus(prometheus):
    evidence = evidence_from_prometheus(prometheus, SHIFTED, WINDOW_S, {"stable": "1", "canary": "2"})
    assert evidence.source == "prometheus"
    # increase() extrapolates inside the window: ratios are exact, absolute counts are not.
    assert evidence.stable.requests / evidence.canary.requests == pytest.approx(2.0, rel=0.15)
    assert evidence.canary.error_rate == pytest.approx(1 / 3, abs=0.1)
    assert evidence.stable.errors == 0
    assert evidence.canary.p95_latency_s > evidence.stable.p95_latency_s


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
