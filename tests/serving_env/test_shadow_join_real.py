"""`python -m monitoring.shadow_join` as its own process under the serving environment's interpreter (the
image its Deployment runs, which has no MLflow): a mirrored request's four logger events go in, in the order
a broker may deliver them, and the comparison comes out on /metrics; an event without the request id gets a
one-line 400, and so does an event of a model no spec names. Posted with urllib (no httpx there)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.ports import free_port
from tests.helpers.kserve_events import mirrored_headers
from tests.helpers.metrics_text import sample_value
from tests.helpers.waiting import wait_until_serving

pytestmark = pytest.mark.serving
MODEL = "intent-transformer"
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def answer(p1: float) -> bytes:
    output = {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [1 - p1, p1]}
    return json.dumps({"model_name": MODEL, "outputs": [output]}).encode()


def test_the_comparator_process_joins_a_mirrored_request_and_refuses_an_unjoinable_event() -> None:
    port = free_port()
    command = [sys.executable, "-m", "monitoring.shadow_join", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/healthz", process, 60.0)
        shadow = f"{MODEL}-shadow"
        live_done, shadow_done = T0 + timedelta(milliseconds=5), T0 + timedelta(milliseconds=8)
        events = [
            (mirrored_headers(shadow, "2", "response", "r1", shadow_done), answer(0.8)),
            (mirrored_headers(MODEL, "1", "response", "r1", live_done), answer(0.7)),
            (mirrored_headers(shadow, "2", "request", "r1", T0), b"{}"),
            (mirrored_headers(MODEL, "1", "request", "r1", T0), b"{}"),
        ]
        results = [post(f"{base}/", headers, body) for headers, body in events]
        assert [json.loads(text)["result"] for _, text in results] == ["waiting"] * 3 + ["compared"]
        status, text = post(f"{base}/", mirrored_headers(MODEL, "1", "request", None, T0), b"{}")
        assert status == 400 and "logger.metadataHeaders" in json.loads(text)["error"]
        status, text = post(f"{base}/", mirrored_headers("no-such-model", "1", "request", "r2", T0), b"{}")
        assert status == 400 and "no model spec names 'no-such-model'" in json.loads(text)["error"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as reply:
            metrics = reply.read().decode()
    finally:
        process.terminate()
        process.wait(15)
    labels = {"model": MODEL, "version": "2"}
    assert sample_value(metrics, "mlops_shadow_requests_total", **labels, result="compared") == 1
    assert sample_value(metrics, "mlops_shadow_agreement_total", **labels) == 1
    assert sample_value(metrics, "mlops_shadow_latency_seconds_sum", **labels, role="shadow") == 0.008
    assert sample_value(metrics, "mlops_shadow_events_rejected_total", reason="bad_attribute") == 1
