"""`python -m monitoring.drift_service` as its own process (serving env) over a REAL alibi-detect bundle,
with a --state-dir: router-style CloudEvents (inference/router/logger.py's binary-mode headers; the
serving env has no httpx, so they are posted with urllib) go in, outcomes come later, the
process is restarted in between, and the quality gauges equal scikit-learn on the joined rows."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.ports import free_port
from monitoring.detectors.fit import fit_detector
from tests.helpers.kserve_events import kserve_headers
from tests.helpers.specs import fixture_spec
from tests.helpers.waiting import wait_until_serving

pytestmark = pytest.mark.serving
MODEL, VERSION = "conversion-xgboost", "7"
ROOT = Path(__file__).resolve().parents[2]


def start(detectors: Path, state: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "monitoring.drift_service", "--port", str(port)]
    command += ["--detectors", str(detectors), "--state-dir", str(state), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/readyz", process, 60.0)
    except AssertionError:
        stop(process)
        raise
    return process, base


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def metric(base: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(http(f"{base}/metrics")[1]):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_outcomes_join_across_a_restart_and_match_sklearn(sessions, tmp_path, fixture_specs):
    detectors = tmp_path / "detectors"
    fit_detector(
        fixture_spec(MODEL), sessions["fit"], VERSION, detectors / MODEL / VERSION, reference_rows=300
    )
    rows = sessions["clean"].iloc[:120].reset_index(drop=True)
    rng = np.random.default_rng(0)
    p1 = np.clip(0.3 + 0.4 * rows["converted"] + rng.normal(0, 0.25, len(rows)), 0.01, 0.99).astype(
        np.float32
    )
    columns = list(json.loads((detectors / MODEL / VERSION / "detector.json").read_text())["features"])
    process, base = start(detectors, tmp_path / "state")
    try:
        for i in range(len(rows)):
            inputs = [_column(rows.iloc[[i]], c) for c in columns]
            request = {"id": f"s-{i}", "inputs": inputs}
            output = {"name": "output__0", "shape": [1, 2], "datatype": "FP32", "data": [1 - p1[i], p1[i]]}
            response = {"id": f"s-{i}", "outputs": [output]}
            for kind, body in (("request", request), ("response", response)):
                assert (
                    http(f"{base}/", _json(body), kserve_headers(MODEL, VERSION, f"ce-{i}", kind))[0] == 200
                )
        labels = {"model": MODEL, "version": VERSION}
        assert metric(base, "mlops_drift_events_received_total", **labels, kind="response") == len(rows)
    finally:
        stop(process)
    process, base = start(detectors, tmp_path / "state")  # the predictions wait on disk
    try:
        y = rows["converted"].to_numpy()
        outcomes = [{"request_id": f"s-{i}", "label": int(y[i])} for i in range(len(rows))]
        status, text = http(f"{base}/v1/outcomes", _json({"outcomes": outcomes}))
        assert status == 202 and json.loads(text)["joined"] == len(rows)
        auc = metric(base, "mlops_model_quality_roc_auc", **labels)
        assert auc == pytest.approx(roc_auc_score(y, p1.astype(np.float64)), abs=1e-9)
        assert metric(base, "mlops_model_quality_floor", model=MODEL, metric="roc_auc") == 0.7
        # the spec's alert settings, which the canary and drift rules join (monitoring/spec_metrics.py)
        settings = fixture_spec(MODEL)
        max_error_rate = settings.canary.success.max_error_rate
        assert metric(base, "mlops_canary_max_error_rate", model=MODEL) == max_error_rate
        severity = settings.monitoring.alert_severity
        assert metric(base, "mlops_model_alert_severity", model=MODEL, severity=severity) == 1
    finally:
        stop(process)


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers or {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _column(row, column: str) -> dict:
    value = row[column].iloc[0]
    if isinstance(value, str):
        return {"name": column, "shape": [1], "datatype": "BYTES", "data": [value]}
    return {
        "name": column,
        "shape": [1],
        "datatype": "FP64",
        "data": [None if value != value else float(value)],
    }


def _json(body: dict) -> bytes:
    return json.dumps(body, default=float).encode()
